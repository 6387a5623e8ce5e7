/**
 * The owner's rules, enforced by the job loop in a real Chromium tab against the real local
 * network: battery, schedule, duty cycle, consent, and resuming after a reload. Jobs come
 * from the requester SDK, sealed on this machine like any requester's.
 */
import type { Page } from '@playwright/test';
import { DECODER_TEST_PROMPTS, decoderTokenizer } from '../modelhost/reference.ts';
import type { JobRequest } from '../protocol/jobs.ts';
import { RequesterClient } from '../requester/client.ts';
import type { Controls } from '../worker/controls/rules.ts';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import { expect, runJob, startContributing, stopContributing, test } from './fixtures.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set: run through playwright.config.ts`);
  return value;
};

const requester = (): RequesterClient =>
  new RequesterClient({ coordinatorUrl: env('SPINNERET_COORDINATOR_URL'), apiKey: env('SPINNERET_E2E_API_KEY') });

function generate(maxTokens = 24, prompt: string = DECODER_TEST_PROMPTS[3]): JobRequest {
  return {
    kind: 'generate',
    model: 'tiny-decoder',
    prompt: decoderTokenizer().encode(prompt).ids,
    maxTokens,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  };
}

async function status(page: Page): Promise<ContributorStatus | null> {
  return page.evaluate(() => window.spinneret?.bridge.api.contributorStatus() ?? null);
}

async function savedControls(page: Page): Promise<Controls | null> {
  return page.evaluate(() => window.spinneret?.bridge.api.controls() ?? null);
}

/**
 * Starts contributing from the Contribute card. The model is loaded and its kernels compiled
 * first with a local run, so that no leased job carries minutes of first-load work on a slow
 * software GPU into its lease deadline.
 */
async function start(page: Page): Promise<void> {
  const warm = await runJob(page, generate(2));
  expect(warm.ok).toBe(true);
  await startContributing(page);
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working|paused/);
}

/** Types into a Controls input and commits it (the change event fires on leaving the field). */
async function setField(page: Page, testid: string, value: string): Promise<void> {
  const input = page.getByTestId(testid);
  await input.fill(value);
  await input.press('Tab');
}

const pausedBy = (page: Page) => page.getByTestId('controls');

test('a simulated battery: discharging below the level pauses work, charging resumes it', async ({ app }) => {
  // The Battery Status API is a boundary double here (a headless machine has no battery); the
  // page reads it exactly as it reads a real one, and the rule itself is unit-tested.
  await app.addInitScript(() => {
    const battery = Object.assign(new EventTarget(), { charging: true, level: 0.8, chargingTime: 0, dischargingTime: Infinity });
    const w = window as unknown as { __battery: { set(change: { charging?: boolean; level?: number }): void } };
    w.__battery = {
      set(change) {
        Object.assign(battery, change);
        battery.dispatchEvent(new Event('chargingchange'));
        battery.dispatchEvent(new Event('levelchange'));
      },
    };
    Object.defineProperty(Navigator.prototype, 'getBattery', { value: () => Promise.resolve(battery), configurable: true });
  });
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached();
  await expect(app.getByTestId('controls-signals')).toContainText('80%');
  await setField(app, 'controls-battery-min', '50');
  await expect.poll(async () => (await savedControls(app))?.minBatteryPercent).toBe(50);
  await start(app);
  await expect(pausedBy(app)).toHaveAttribute('data-paused-by', '');

  await app.evaluate(() => (window as unknown as { __battery: { set(c: object): void } }).__battery.set({ charging: false, level: 0.3 }));
  await expect(pausedBy(app)).toHaveAttribute('data-paused-by', 'battery');
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', 'paused');
  await expect(app.getByTestId('controls-why')).toContainText('battery');

  const answer = requester().run(generate(8));
  // Paused: the job waits at the coordinator, this tab does not take it.
  await app.waitForTimeout(4000);
  expect((await status(app))?.jobsDone).toBe(0);
  await app.evaluate(() => (window as unknown as { __battery: { set(c: object): void } }).__battery.set({ charging: true }));
  await expect(pausedBy(app)).toHaveAttribute('data-paused-by', '');
  const result = await answer;
  expect(result.kind).toBe('generate');
  expect((await status(app))?.jobsDone).toBe(1);
});

test('a schedule outside its window pauses; one around now resumes', async ({ app }) => {
  // Windows in the browser's local time, two hours ahead of now (outside) and around now (inside).
  const [outside, inside] = await app.evaluate(() => {
    const hhmm = (d: Date): string => `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    const at = (minutes: number): string => hhmm(new Date(Date.now() + minutes * 60_000));
    return [`${at(120)}-${at(180)}`, `${at(-60)}-${at(60)}`];
  });
  await start(app);
  await setField(app, 'controls-schedule', outside);
  await expect(pausedBy(app)).toHaveAttribute('data-paused-by', 'schedule');
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', 'paused');
  expect((await status(app))?.resumeAt).toBeGreaterThan(Date.now() + 100 * 60_000);
  await setField(app, 'controls-schedule', inside);
  await expect(pausedBy(app)).toHaveAttribute('data-paused-by', '');
  expect((await requester().run(generate(4))).kind).toBe('generate');
  await setField(app, 'controls-schedule', 'after lunch');
  await expect(app.getByTestId('controls-schedule-error')).not.toBeEmpty();
});

test('a 50% duty cycle: the busy share measured from job timings is within 10 points of 50%', async ({ app }) => {
  await app.getByTestId('controls-duty').selectOption('50');
  await expect.poll(async () => (await savedControls(app))?.dutyCycle).toBe(50);
  await start(app);
  const client = requester();
  await client.run(generate(4));
  const before = (await status(app))?.recentJobs.length ?? 0;
  await Promise.all(Array.from({ length: 8 }, (_, i) => client.run(generate(32, DECODER_TEST_PROMPTS[i % 4] ?? 'Hello'))));
  const spans = ((await status(app))?.recentJobs ?? []).slice(before);
  expect(spans).toHaveLength(8);
  // Each cycle: a job, its rest, and the next job's arrival; the last job's rest is outside the run.
  const busy = spans.slice(0, -1).reduce((sum, s) => sum + s.end - s.start, 0);
  const elapsed = (spans.at(-1)?.start ?? 0) - (spans[0]?.start ?? 0);
  const fraction = busy / elapsed;
  console.log(`duty cycle 50%: measured busy share ${(fraction * 100).toFixed(1)}% over ${spans.length} jobs, ${elapsed} ms`);
  expect(Math.abs(fraction - 0.5)).toBeLessThan(0.1);
});

test('consent off for a kind: no job of that kind is leased, others are', async ({ app }) => {
  await app.getByTestId('controls-consent-embed').uncheck();
  await expect.poll(async () => (await savedControls(app))?.consent.includes('embed')).toBe(false);
  await start(app);
  const client = requester();
  await expect.poll(async () => (await client.models()).find((m) => m.id === 'tiny-embed')?.kinds ?? []).not.toContain('embed');
  const abort = new AbortController();
  const embed = client
    .run({ kind: 'embed', model: 'tiny-embed', inputs: ['never leased'] }, { signal: abort.signal })
    .catch((e: unknown) => e);
  expect((await client.run(generate(4))).kind).toBe('generate');
  await app.waitForTimeout(3000);
  abort.abort();
  expect(await embed).toMatchObject({ code: 'ABORTED' });
  const s = await status(app);
  expect(s?.jobsDone).toBe(1);
  expect(s?.jobsFailed).toBe(0);
});

test('a reloaded tab resumes contributing without a click; after Stop it stays stopped', async ({ app }) => {
  await start(app);
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached();
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  expect((await requester().run(generate(4))).kind).toBe('generate');
  await expect(app.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');
  await stopContributing(app);
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached();
  await app.waitForTimeout(3000);
  await expect(app.getByTestId('contribute')).not.toHaveAttribute('data-state', /connecting|connected|working|paused/);
  expect(await status(app)).toBeNull();
});

test.afterEach(async ({ app }, info) => {
  if (info.status !== info.expectedStatus)
    console.log('contributor status at the failure:', JSON.stringify(await status(app).catch(() => null)));
});
