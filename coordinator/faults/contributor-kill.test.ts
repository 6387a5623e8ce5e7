/**
 * Fault run: contributors killed mid-job while a requester runs jobs, on the real coordinator
 * with its money side, real Contributor loops and the requester SDK. Each kill cuts a
 * contributor's socket (no close handshake) right after a result chunk of its job's first
 * delta is written to it, mid-stream; the job is leased again to another contributor. Every job must finish exactly once, each
 * requester streams each delta once and is charged once, the killed leases earn nothing, and
 * the ledger's books check passes. `FAULT_KILLS` kills (default 15; `npm run test:faults`: 100).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNano } from '@ton/core';
import { RequesterClient } from '../../requester/client.ts';
import { pendingAccount } from '../ledger/accounts.ts';
import { type FaultContributor, type FaultNetwork, startFaultNetwork } from '../../testing/faults.ts';

const KILLS = Number(process.env['FAULT_KILLS'] ?? 15);
/** Two of every three jobs lose their first contributor. */
const JOBS = Math.floor((KILLS * 3) / 2) + 1;
const CONTRIBUTORS = 4;
const LANES = 4;
const FUNDS = toNano('10');

let net: FaultNetwork;
beforeAll(async () => {
  net = await startFaultNetwork();
}, 180_000);
afterAll(() => net.close());

describe(`contributors killed mid-job ${KILLS} times`, () => {
  it(
    'finishes every job exactly once on another contributor, charges once, credits only the finisher, and balances the books',
    async () => {
      /** Tag of each job to kill → the contributor killed on it. */
      const victims = new Map<string, string>();
      const toKill = new Set(Array.from({ length: JOBS }, (_, i) => i).filter((i) => i % 3 !== 0));
      const kill = (c: FaultContributor, tag: string): void => {
        if (!toKill.has(Number(tag)) || victims.has(tag)) return;
        victims.set(tag, c.id);
        c.killAfterNextChunk();
      };
      for (let i = 0; i < CONTRIBUTORS; i++) {
        const c = await net.contributor((self, request, index) => {
          const tag = request.kind === 'chat' ? (/^job (\d+)$/.exec(request.messages.at(-1)?.content ?? '')?.[1] ?? '') : '';
          if (index === 0 && tag !== '') kill(self, tag);
        });
        // Each job runs long enough after its first delta for the kill to land mid-job.
        c.runtime.chatDelayMs = 60;
      }
      const key = await net.key(FUNDS);
      const started = Date.now();
      const outcomes: Array<{ tag: string; jobId: string; text: string; deltas: string; attempts: number }> = [];
      let next = 0;
      const lane = async (): Promise<void> => {
        // Each lane runs one job at a time, so the last job it created is the one it follows.
        let jobId = '';
        const client = new RequesterClient({
          coordinatorUrl: net.url,
          apiKey: key.secret,
          checkReplicas: false,
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            if (
              init?.method === 'POST' &&
              new URL(input instanceof Request ? input.url : input.toString()).pathname === '/v1/jobs' &&
              response.ok
            )
              jobId = ((await response.clone().json()) as { jobId: string }).jobId;
            return response;
          },
        });
        while (next < JOBS) {
          const tag = String(next++);
          let deltas = '';
          const result = await client.run(
            {
              kind: 'chat',
              model: 'tiny-decoder',
              messages: [{ role: 'user', content: `job ${tag}` }],
              maxTokens: 8,
              sampling: { temperature: 0, topP: 1, seed: 0 },
            },
            { onDelta: (piece) => (deltas += piece.text) },
          );
          outcomes.push({ tag, jobId, text: result.kind === 'chat' ? result.text : '', deltas, attempts: result.attempts });
        }
      };
      await Promise.all(Array.from({ length: LANES }, lane));
      const seconds = (Date.now() - started) / 1000;
      await net.money.idle();

      // Every job answered once, whole, each delta once; a killed job on its second attempt.
      expect(victims.size).toBe(KILLS);
      expect(outcomes).toHaveLength(JOBS);
      expect(new Set(outcomes.map((o) => o.jobId)).size).toBe(JOBS);
      for (const o of outcomes) expect(o, `job ${o.tag}`).toMatchObject({ text: 'Hello!', deltas: 'Hello!' });
      for (const o of outcomes.filter((x) => victims.has(x.tag))) expect(o.attempts, `job ${o.tag}`).toBe(2);

      // The coordinator: each job done once, by a contributor other than the one killed on it.
      const done = net.done.filter((d) => d.apiKeyId === key.id);
      expect(done.map((d) => d.jobId).sort()).toEqual(outcomes.map((o) => o.jobId).sort());
      const finisher = new Map(done.map((d) => [d.jobId, d.contributorId]));
      for (const o of outcomes) if (victims.has(o.tag)) expect(finisher.get(o.jobId)).not.toBe(victims.get(o.tag));
      const { rows: states } = await net.store.db.query<{ state: string; n: string }>(
        'SELECT state, count(*)::text AS n FROM jobs WHERE api_key_id = $1 GROUP BY state',
        [key.id],
      );
      expect(states).toEqual([{ state: 'done', n: String(JOBS) }]);

      // Money: each job reserved once and charged once; the finisher's wallet credited, no killed lease's.
      const { rows: billed } = await net.store.db.query<{ job_id: string; state: string; charged: string }>(
        'SELECT job_id, state, charged::text AS charged FROM job_billing WHERE api_key_id = $1',
        [key.id],
      );
      expect(billed).toHaveLength(JOBS);
      expect(billed.every((b) => b.state === 'charged')).toBe(true);
      const charged = billed.reduce((sum, b) => sum + BigInt(b.charged), 0n);
      expect(await net.ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({ available: FUNDS - charged, reserved: 0n });
      const walletOf = new Map(net.contributors.map((c) => [c.id, c.wallet]));
      const { rows: credits } = await net.store.db.query<{ ref: string; account: string; kind: string }>(
        `SELECT e.ref, e.account, t.kind FROM ledger_entries e JOIN ledger_txns t ON t.id = e.txn_id
        WHERE e.ref = ANY($1::text[]) AND e.account LIKE 'contributor:%'`,
        [outcomes.map((o) => o.jobId)],
      );
      expect(credits).toHaveLength(JOBS);
      for (const credit of credits) {
        expect(credit.kind).toBe('job.credit');
        expect(credit.account).toBe(pendingAccount(walletOf.get(finisher.get(credit.ref) ?? '') ?? 'none'));
      }
      expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
      console.log(
        `fault run: ${KILLS} contributor kills mid-job, ${JOBS} jobs, ${CONTRIBUTORS} contributors, ${seconds.toFixed(1)} s; ` +
          `0 lost, 0 duplicated, ${JOBS} charged once (${charged} nanoTON), books balanced`,
      );
    },
    60_000 + KILLS * 3_000,
  );
});
