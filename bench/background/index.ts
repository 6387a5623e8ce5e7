/**
 * `BENCH_ONLY=background npm run bench`: jobs per minute of one contributor tab while hidden,
 * as a ratio against the same tab visible, measured in one run against a local network of
 * its own (model host, coordinator on in-memory PGlite, the built app; no money or
 * verification, which do not touch the tab's job loop). The tab is hidden for real (a
 * minimized window over the DevTools protocol; see hidden-tab.ts).
 *
 * BENCH_BACKGROUND_SECONDS sets each phase's length (60 by default). BENCH_BACKGROUND_LONG=1
 * keeps the tab hidden for 6.5 minutes instead and reports the pace before and after the
 * 5-minute mark, where Chrome's intensive throttling of hidden pages starts.
 */
import { spawnSync } from 'node:child_process';
import { createCoordinator } from '../../coordinator/app.ts';
import { openStore } from '../../coordinator/store/index.ts';
import { startModelHost } from '../../modelhost/server.ts';
import { startAppServer } from '../../scripts/serve.ts';
import { DECODER_TEST_PROMPTS, decoderTokenizer } from '../../modelhost/reference.ts';
import type { JobRequest } from '../../protocol/jobs.ts';
import { RequesterClient } from '../../requester/client.ts';
import type { ContributorStatus } from '../../worker/network/contributor.ts';
import { launchChromium, type Tab } from './hidden-tab.ts';

const PHASE_MS = Number(process.env['BENCH_BACKGROUND_SECONDS'] ?? 60) * 1000;
const LONG = process.env['BENCH_BACKGROUND_LONG'] === '1';
const LONG_HIDDEN_MS = 6.5 * 60_000;
/** Jobs kept waiting at the coordinator at all times, so the tab never idles for lack of demand. */
const IN_FLIGHT = 3;

function job(i: number): JobRequest {
  return {
    kind: 'generate',
    model: 'tiny-decoder',
    prompt: decoderTokenizer().encode(DECODER_TEST_PROMPTS[i % 4] ?? 'Hello').ids,
    maxTokens: 8,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  };
}

/** Keeps IN_FLIGHT jobs going until stopped; records when each finished (requester's clock). */
function demand(client: RequesterClient): { finished: number[]; failed: string[]; stop: () => Promise<void> } {
  const finished: number[] = [];
  const failed: string[] = [];
  let running = true;
  let n = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      try {
        await client.run(job(n++));
        finished.push(Date.now());
      } catch (err) {
        failed.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  const loops = Array.from({ length: IN_FLIGHT }, loop);
  return {
    finished,
    failed,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

const perMinute = (times: number[], from: number, to: number): number =>
  (times.filter((t) => t > from && t <= to).length * 60_000) / (to - from);

async function phase(
  tab: Tab,
  times: number[],
  ms: number,
): Promise<{ from: number; to: number; jobsPerMinute: number; visibility: string }> {
  const from = Date.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const to = Date.now();
  return { from, to, jobsPerMinute: perMinute(times, from, to), visibility: await tab.visibility() };
}

export async function runBackgroundBench(): Promise<void> {
  const build = spawnSync('node_modules/.bin/vite', ['build', '--logLevel', 'warn'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('building the app failed');
  const host = await startModelHost({ port: 0 });
  const store = await openStore({ databaseUrl: '' });
  // A long lease: the model's first load on a software GPU can take minutes on a busy machine.
  const coordinator = createCoordinator({ store, leaseMs: 180_000, heartbeatMs: 5_000 });
  const network = await coordinator.listen({ port: 0 });
  const key = await coordinator.createApiKey('background bench', { jobsPerMinute: 100_000, maxInFlight: 16 });
  const pageConfig = { manifestUrl: host.manifestUrl, coordinatorUrl: network.url, walletsListUrl: 'data:application/json,[]' };
  const app = await startAppServer({ distDir: 'dist', port: 0, config: pageConfig });
  const browser = await launchChromium();
  try {
    const tab = await browser.open(app.url);
    await tab.waitFor(`document.querySelector('#app')?.dataset.ready === 'true'`);
    // Load the model and compile its kernels with a local run first: not part of either phase.
    await tab.evaluate(`window.spinneret.bridge.api.run(${JSON.stringify(job(0))}).then(() => true)`);
    await tab.evaluate(`document.querySelector('[data-testid="contrib-start"]').click()`);
    await tab.waitFor(`/connected|working/.test(document.querySelector('[data-testid="contribute"]')?.dataset.state ?? '')`);
    const client = new RequesterClient({ coordinatorUrl: network.url, apiKey: key.secret });
    await client.run(job(0));
    const load = demand(client);
    await new Promise((resolve) => setTimeout(resolve, 5000)); // the stream settles
    const visible = await phase(tab, load.finished, PHASE_MS);
    await tab.hide();
    const hidden = await phase(tab, load.finished, LONG ? LONG_HIDDEN_MS : PHASE_MS);
    const status = await tab.evaluate<ContributorStatus>('window.spinneret.bridge.api.contributorStatus()');
    await load.stop();

    console.log(`\nBackground: one contributor tab, hidden vs visible (Chromium, SwiftShader, ${IN_FLIGHT} jobs kept waiting)`);
    console.log(
      `visible  ${visible.jobsPerMinute.toFixed(1).padStart(7)} jobs/min over ${((visible.to - visible.from) / 1000).toFixed(0)} s (page ${visible.visibility})`,
    );
    console.log(
      `hidden   ${hidden.jobsPerMinute.toFixed(1).padStart(7)} jobs/min over ${((hidden.to - hidden.from) / 1000).toFixed(0)} s (page ${hidden.visibility})`,
    );
    console.log(`ratio hidden/visible ${(hidden.jobsPerMinute / visible.jobsPerMinute).toFixed(3)} (target ≥ 0.95)`);
    if (LONG) {
      const mark = hidden.from + 5 * 60_000;
      const early = perMinute(load.finished, hidden.from, mark);
      const late = perMinute(load.finished, mark, hidden.to);
      console.log(
        `hidden, first 5 min ${early.toFixed(1)} jobs/min; after the 5-minute mark ${late.toFixed(1)} jobs/min (ratio to visible ${(late / visible.jobsPerMinute).toFixed(3)})`,
      );
    }
    console.log(
      `worker's own pace at the end: ${status.pace?.jobsPerMinute ?? 0} jobs/min, busy ${((status.pace?.busyFraction ?? 0) * 100).toFixed(0)}%, visibility ${status.visibility}`,
    );
    if (load.failed.length > 0) console.log(`${load.failed.length} job(s) failed, first: ${load.failed[0]}`);
  } finally {
    await browser.close();
    await Promise.allSettled([app.close(), host.close()]);
    await coordinator.close();
    await network.close().catch(() => undefined);
    await store.close();
  }
}
