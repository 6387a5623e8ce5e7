/**
 * A WebGPU device destroyed in the middle of a leased job, through the whole network: a funded
 * requester's streamed generation is leased to a contributor tab in Chromium (WebGPU on
 * SwiftShader), and the tab's GPU device is destroyed after the first tokens reached the
 * requester and before the result. The job runs again on the recovered device; the requester
 * gets exactly one answer, equal to the float64 reference, streamed once; the contributor is
 * credited once for it (exact amounts from the coordinator's ledger); the page shows the
 * recovery and keeps contributing. The spec runs a network of its own (the real coordinator on
 * PostgreSQL, money on the sandbox chain), as e2e/trust.spec.ts does.
 */
import { toNano } from '@ton/core';
import { startPaidNetwork, type PaidNetwork } from '../testing/billing.ts';
import type { JobDone } from '../coordinator/leases/relay.ts';
import { availableAccount, reservedAccount } from '../coordinator/ledger/accounts.ts';
import { price } from '../coordinator/ledger/prices.ts';
import { waitFor } from '../coordinator/store/testing.ts';
import { testWallet } from '../testing/verification.ts';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceEmbed, referenceGreedy } from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import { RequesterClient } from '../requester/client.ts';
import { startAppServer } from '../scripts/serve.ts';
import { expect, manifestUrl, openSections, startContributing, test } from './fixtures.ts';

const FUNDS = toNano('1');
const share = (d: JobDone): bigint => price(d.model, d.usage).contributorShare;
const sum = (xs: readonly bigint[]): bigint => xs.reduce((a, b) => a + b, 0n);

test('a GPU device destroyed mid-job: the job runs again, the requester gets one correct answer and the contributor is credited once', async ({
  page,
}) => {
  test.setTimeout(240_000);
  let net: PaidNetwork | undefined;
  let app: Awaited<ReturnType<typeof startAppServer>> | undefined;
  try {
    // Verification with no checks (every credit signed), so one tab serves every job alone.
    net = await startPaidNetwork('PostgreSQL', { receipts: true });
    const key = await net.key(FUNDS);
    app = await startAppServer({
      distDir: 'dist',
      port: 0,
      config: { manifestUrl: manifestUrl(), coordinatorUrl: net.url, walletsListUrl: 'data:application/json,[]' },
    });

    // The contributor tab, started with its button, its payout wallet bound as a wallet session would.
    await page.goto(app.url);
    await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
    await openSections(page);
    await expect(page.getByTestId('device-status')).toContainText('generation 1, 0 loss(es) recovered');
    await startContributing(page);
    await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
    const contributorId = (await page.getByTestId('contrib-counts').getAttribute('data-contributor')) ?? '';
    expect(contributorId).not.toBe('');
    const wallet = testWallet();
    await net.bind(contributorId, wallet);

    // A streamed generation long enough to be cut: its first tokens reach the requester, then the device goes.
    const decoder = testModels().decoder.entry.onnx.decoder;
    if (decoder === undefined) throw new Error('no decoder');
    const tokenizer = decoderTokenizer();
    const promptIds = tokenizer.encode(DECODER_TEST_PROMPTS[3]).ids;
    const maxTokens = 64;
    const expected = referenceGreedy(promptIds, maxTokens, decoder.eosTokenIds);
    expect(expected.minMargin).toBeGreaterThan(1e-2);
    expect(expected.tokens.length).toBeGreaterThanOrEqual(16);

    const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
    const deltas: string[] = [];
    const deltaTokens: number[] = [];
    // The device's losses as the worker counted them right after the destroy.
    const loss: { losses: Promise<number> | null } = { losses: null };
    const run = requester.run(
      { kind: 'generate', model: 'tiny-decoder', prompt: promptIds, maxTokens, sampling: { temperature: 0, topP: 1, seed: 0 } },
      {
        onDelta: (d) => {
          deltas.push(d.text);
          deltaTokens.push(...d.tokens);
          // The page's "simulate GPU loss" button exists only in development builds: the test asks the worker, as the button does.
          loss.losses ??= page.evaluate(async () => {
            await window.spinneret?.bridge.api.loseDevice();
            return (await window.spinneret?.bridge.api.status())?.deviceLosses ?? -1;
          });
        },
      },
    );
    const result = await run;
    if (loss.losses === null) throw new Error('no token was streamed before the result');
    expect(await loss.losses).toBe(1);
    // The loss cut the job short (it did not end first): the worker ran it again on the new device.
    expect(await page.evaluate(async () => (await window.spinneret?.bridge.api.status())?.jobsRerun)).toBe(1);

    // Exactly one answer, the reference's, from one attempt on the recovered device; streamed once, with nothing repeated.
    if (result.kind !== 'generate') throw new Error('not a generation');
    expect(result.tokens).toEqual(expected.tokens);
    expect(result.finishReason).toBe(expected.finishReason);
    expect(result.attempts).toBe(1);
    expect(deltaTokens).toEqual(expected.tokens);
    expect(deltas.join('')).toBe(result.text);

    // The page shows the recovery.
    await expect(page.getByTestId('device-status')).toContainText('generation 2, 1 loss(es) recovered', { timeout: 30_000 });
    await expect(page.getByTestId('controls-device')).toContainText('1');
    await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');

    // And keeps contributing: the next job runs on the new device and matches its reference.
    const texts = ['the tab kept working after its GPU was lost'];
    const next = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: texts });
    if (next.kind !== 'embed') throw new Error('not an embedding');
    const reference = referenceEmbed(texts);
    next.embeddings.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)));
    await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', '2');
    await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);

    // The books: each job delivered once, by this tab, credited once to its wallet and charged once to the requester.
    await requester.idle();
    await net.settled();
    await net.money.idle();
    const ledger = net.ledger;
    const jobs = net.done.filter((d) => d.role === 'job');
    expect(jobs.map((d) => [d.model, d.contributorId])).toEqual([
      ['tiny-decoder', contributorId],
      ['tiny-embed', contributorId],
    ]);
    const [generated] = jobs;
    if (generated === undefined) throw new Error('unreachable');
    expect(generated.usage).toEqual({ promptTokens: promptIds.length, completionTokens: expected.tokens.length });
    const credited = sum(jobs.map(share));
    expect(credited).toBeGreaterThan(0n);
    await waitFor(async () => (await net?.pending(wallet)) === credited, 30_000);
    expect(await net.pending(wallet)).toBe(credited);
    const { rows: earned } = await net.store.db.query<{ job_id: string; wallet: string; state: string }>(
      'SELECT job_id, wallet, state FROM earnings_jobs ORDER BY credited_at',
    );
    expect(earned).toEqual(jobs.map((d) => ({ job_id: d.jobId, wallet, state: 'pending' })));
    const { rows } = await net.store.db.query<{ ref: string; kind: string; n: unknown }>(
      `SELECT t.ref, t.kind, count(DISTINCT t.id) AS n FROM ledger_txns t JOIN ledger_entries e ON e.txn_id = t.id
       WHERE e.account = ANY($1::text[]) GROUP BY t.ref, t.kind ORDER BY t.ref, t.kind`,
      [[availableAccount(key.id), reservedAccount(key.id)]],
    );
    for (const d of jobs) {
      const kinds = rows.filter((r) => r.ref === d.jobId).map((r) => `${r.kind}:${Number(r.n)}`);
      expect(kinds).toEqual(['job.credit:1', 'job.reserve:1']);
    }
    const charged = sum(jobs.map((d) => price(d.model, d.usage).gross));
    expect(await net.balance(key)).toEqual({ available: FUNDS - charged, reserved: 0n });
    expect(await ledger.checkBooks()).toMatchObject({ ok: true });
  } finally {
    await page.close();
    await app?.close();
    await net?.close();
  }
});
