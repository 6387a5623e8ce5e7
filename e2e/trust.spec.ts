/**
 * Money follows checked work, end to end: a funded requester's jobs served by an honest
 * contributor tab in Chromium (WebGPU) and by a cheating Node contributor that returns garbage
 * embeddings and claims a million tokens for each. The spec runs a network of its own (the
 * real coordinator on PostgreSQL with its money side on the sandbox chain) whose policy sends
 * a canary with every job and quarantines on one failed check, so the cheat is caught in a
 * few jobs; the shared network of the other specs runs without canaries.
 */
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { startPaidNetwork, type PaidNetwork } from '../testing/billing.ts';
import type { JobDone } from '../coordinator/leases/relay.ts';
import { availableAccount, reservedAccount, settledAccount } from '../coordinator/ledger/accounts.ts';
import { price } from '../coordinator/ledger/prices.ts';
import { waitFor } from '../coordinator/store/testing.ts';
import { EmbedRuntime, testWallet } from '../testing/verification.ts';
import { embedTokenizer } from '../modelhost/reference.ts';
import type { JobResult, StreamChunk } from '../protocol/jobs.ts';
import { RequesterClient } from '../requester/client.ts';
import { startAppServer } from '../scripts/serve.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { expect, manifestUrl, openSections, startContributing, test } from './fixtures.ts';

/** A contributor skimping on work: a random unit vector for every input, and a million tokens claimed in each direction. */
class CheatRuntime extends EmbedRuntime {
  constructor() {
    super({ lieRate: 1, seed: 9 });
  }

  override async run(
    request: unknown,
    options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {},
  ): Promise<{ result: JobResult }> {
    const { result } = await super.run(request, options);
    return { result: { ...result, usage: { promptTokens: 1_000_000, completionTokens: 1_000_000 } } as JobResult };
  }
}

const FUNDS = toNano('1');
const TEXTS = [
  'the honest tab embeds this sentence',
  'a cheat returns noise instead',
  'money follows checked work',
  'garbage is never paid',
  'every job is charged once',
  'quarantine applies to the wallet',
  'canaries look like any job',
  'the requester keeps its answer',
];

const share = (d: JobDone): bigint => price(d.model, d.usage).contributorShare;
const sum = (xs: readonly bigint[]): bigint => xs.reduce((a, b) => a + b, 0n);

test('a cheating contributor earns nothing and its wallet is quarantined; the honest tab is paid; the requester is charged once per job', async ({
  page,
}) => {
  test.setTimeout(240_000);
  const started = Date.now();
  let net: PaidNetwork | undefined;
  let app: Awaited<ReturnType<typeof startAppServer>> | undefined;
  let cheat: Contributor | undefined;
  try {
    net = await startPaidNetwork('PostgreSQL', {
      policy: {
        canaryRate: 1,
        probationCanaryRate: 1,
        baseReplicationRate: 0,
        minReplicationRate: 0,
        quarantineAfter: 1,
        benchFirstFailure: false,
      },
    });
    await net.money.fund(net.money.budgetMemo, toNano('10'));
    await net.money.billing.refreshBudget();
    const key = await net.key(FUNDS);
    // The app, pointed at this network; models come from the shared model host (the same pinned files).
    app = await startAppServer({
      distDir: 'dist',
      port: 0,
      config: { manifestUrl: manifestUrl(), coordinatorUrl: net.url, walletsListUrl: 'data:application/json,[]' },
    });

    // The honest tab, with Start, its payout wallet bound as a wallet session would.
    await page.goto(app.url);
    await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
    await openSections(page);
    await startContributing(page);
    await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
    const honestId = (await page.getByTestId('contrib-counts').getAttribute('data-contributor')) ?? '';
    expect(honestId).not.toBe('');
    const honestWallet = testWallet();
    await net.bind(honestId, honestWallet);

    // The cheat: a Node contributor loop on the wire protocol, with a wallet of its own.
    cheat = new Contributor({
      coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
      runtime: new CheatRuntime(),
      identity: await loadOrCreateIdentity(new MemoryKeyStore()),
      consent: ['embed'],
      client: { name: 'cheat', version: '0.0.0' },
      webSocket: WebSocket,
    });
    cheat.start();
    await waitFor(async () => cheat?.status().contributorId !== null);
    const cheatId = cheat.status().contributorId ?? '';
    const cheatWallet = testWallet();
    await net.bind(cheatId, cheatWallet);

    // The requester's jobs, one at a time, until the cheat is caught and the tab has served some.
    const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
    const verification = net.verification;
    if (verification === undefined) throw new Error('the network has no verification');
    const quarantined = async (): Promise<boolean> => (await verification.report(cheatId)).quarantined;
    const ran: string[] = [];
    for (const text of TEXTS) {
      const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
      expect(result.kind).toBe('embed');
      ran.push(text);
      const served = net.done.filter((d) => d.role === 'job' && d.contributorId === honestId).length;
      if (ran.length >= 3 && served >= 2 && (await quarantined())) break;
    }
    await waitFor(quarantined, 30_000);
    await requester.idle();
    // Every job and check has reached the books: each delivered job billed, the cheat's credits voided.
    await net.settled();
    await verification.idle();
    await net.money.idle();
    // A credit that landed before its check was recorded stays pending until its window ends, when settlement
    // asks verification and voids it: end the cheat's windows now and run settlement, as its timer would.
    await net.store.db.query(`UPDATE earnings_jobs SET due_at = 0 WHERE wallet = $1 AND state = 'pending'`, [cheatWallet]);
    const settlement = await net.money.earnings.settleDue();
    expect(settlement.settled).toBe(0);

    const jobs = net.done.filter((d) => d.role === 'job' && d.apiKeyId === key.id);
    const byCheat = net.done.filter((d) => d.contributorId === cheatId);
    const byHonest = net.done.filter((d) => d.contributorId === honestId);
    expect(jobs).toHaveLength(ran.length);
    expect(byCheat.length).toBeGreaterThan(0);
    expect(byHonest.filter((d) => d.role === 'job').length).toBeGreaterThanOrEqual(2);

    // The cheat claimed a million tokens; only the envelope's count was billed and credited.
    for (const d of byCheat) {
      expect(d.claimed.promptTokens).toBe(1_000_000);
      expect(d.usage.promptTokens).toBeLessThanOrEqual(d.envelope.inputTokens);
    }
    // The cheat earns nothing: no pending, no settled; all its credits are in the penalties account.
    expect(await net.pending(cheatWallet)).toBe(0n);
    expect(await net.ledger.accountBalance(settledAccount(cheatWallet))).toBe(0n);
    expect(await net.penalties()).toBe(sum(byCheat.map(share)));
    expect(await net.penalties()).toBeGreaterThan(0n);
    // Its wallet is quarantined, not only the device's key.
    const { rows: walletRows } = await net.store.db.query<{ n: unknown }>(
      'SELECT count(*) AS n FROM verification_quarantines WHERE contributor_id = $1',
      [`wallet:${cheatWallet}`],
    );
    expect(Number(walletRows[0]?.n)).toBe(1);

    // The honest tab is credited for every job and check it ran; its requester jobs billed the tokens counted here.
    for (const d of byHonest.filter((x) => x.role === 'job')) {
      const text = ran.find((t) => embedTokenizer().encode(t).ids.length === d.usage.promptTokens);
      expect(text).toBeDefined();
    }
    expect(await net.pending(honestWallet)).toBe(sum(byHonest.map(share)));
    expect(await net.pending(honestWallet)).toBeGreaterThan(0n);

    // The requester is charged exactly once per job: one reserve and one credit transaction each,
    // nothing back for the voided ones, and its balance is what the tokens of its jobs cost.
    const ids = jobs.map((d) => d.jobId);
    const { rows } = await net.store.db.query<{ ref: string; kind: string; n: unknown }>(
      `SELECT t.ref, t.kind, count(DISTINCT t.id) AS n FROM ledger_txns t JOIN ledger_entries e ON e.txn_id = t.id
       WHERE e.account = ANY($1::text[]) GROUP BY t.ref, t.kind ORDER BY t.ref, t.kind`,
      [[availableAccount(key.id), reservedAccount(key.id)]],
    );
    const jobRows = rows.filter((r) => r.kind !== 'deposit' && r.kind !== 'deposit.assign');
    expect(new Set(jobRows.map((r) => r.ref))).toEqual(new Set(ids));
    for (const id of ids) {
      const kinds = jobRows.filter((r) => r.ref === id).map((r) => `${r.kind}:${Number(r.n)}`);
      expect(kinds).toEqual(['job.credit:1', 'job.reserve:1']);
    }
    const charged = sum(jobs.map((d) => price(d.model, d.usage).gross));
    expect(await net.balance(key)).toEqual({ available: FUNDS - charged, reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
    console.log(
      `trust e2e: ${ran.length} jobs (${byCheat.filter((d) => d.role === 'job').length} to the cheat), ${net.done.length - jobs.length} checks, ${Date.now() - started} ms`,
    );
  } finally {
    await cheat?.stop({ drain: false });
    await page.close();
    await app?.close();
    await net?.close();
  }
});
