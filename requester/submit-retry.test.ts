/**
 * The SDK sends a job's sealed payload again when the coordinator answers 503 `UNAVAILABLE`
 * (the replica that holds the job briefly gone for the replica called, or the database down),
 * with the backoff it uses to create jobs, and gives up with a typed error when it stays so;
 * the job runs once and is charged once. Real replicas on PostgreSQL and NATS with their money
 * side; the faults are put where they happen: in NATS between the replicas (the owner does not
 * answer, or its answer is lost after it took the payload) and in front of PostgreSQL (a TCP
 * relay that goes away while a `submit` on the requester channel needs the database).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { referenceEmbed } from '../modelhost/reference.ts';
import type { Bus } from '../coordinator/cluster/bus.ts';
import { checkBooks } from '../coordinator/ledger/books.ts';
import { Ledger } from '../coordinator/ledger/ledger.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../coordinator/store/testing.ts';
import { paidReplica, type PaidReplica, ReplicaKit, startContributor, until } from '../testing/cluster.ts';
import { startTcpRelay } from '../testing/faults.ts';
import { EmbedRuntime } from '../testing/verification.ts';
import { RequesterClient } from './client.ts';
import { RetriesExhaustedError } from './errors.ts';

const kit = new ReplicaKit();
afterAll(() => kit.dispose());
const checks = { canaryRate: 0, replicationRate: 0 };
const FUNDS = 10_000_000n;

/** Forwarded `PUT …/payload` calls fail: `gone` of them unanswered, then `lost` of them answered by the owner with the answer lost. */
const faults = { gone: 0, lost: 0, puts: 0 };
const faultyBus = (bus: Bus): Bus => ({
  publish: (subject, body) => bus.publish(subject, body),
  subscribe: (subject, schema, handler) => bus.subscribe(subject, schema, handler),
  async request(subject, body, timeoutMs) {
    if (subject.endsWith('.call') && (body as { method?: unknown }).method === 'PUT') {
      faults.puts++;
      if (faults.gone > 0) {
        faults.gone--;
        throw new Error('503 no responders');
      }
      if (faults.lost > 0) {
        faults.lost--;
        await bus.request(subject, body, timeoutMs);
        throw new Error('TIMEOUT');
      }
    }
    return bus.request(subject, body, timeoutMs);
  },
  get dropped() {
    return bus.dropped;
  },
  get maxPayload() {
    return bus.maxPayload;
  },
  close: () => bus.close(),
});

/** A funded key on `r` and the ledger. */
const funded = async (r: PaidReplica) => {
  const key = await r.coordinator.createApiKey('submits');
  const ledger = new Ledger(r.store.db);
  await ledger.deposit({ lt: 1n, hash: 'a1'.repeat(32), amount: FUNDS, to: { kind: 'requester', apiKeyId: key.id }, note: 't' });
  return { key, ledger };
};

const expectEmbedding = (result: Awaited<ReturnType<RequesterClient['run']>>, text: string): void => {
  if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
  const expected = referenceEmbed([text])[0] ?? [];
  expect(result.embeddings[0]?.length).toBe(expected.length);
  result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
  expect(result.attempts).toBe(1);
};

/** Every delivered job of the key charged once, nothing else reserved or charged, the books balanced. */
const expectChargedOnce = async (r: PaidReplica, ledger: Ledger, keyId: string, jobs: number): Promise<void> => {
  const rows = await until(`${jobs} charges`, async () => {
    const { rows } = await r.store.db.query<{ state: string; charged: string | null }>(
      'SELECT state, charged::text AS charged FROM job_billing WHERE api_key_id = $1 AND state <> $2',
      [keyId, 'released'],
    );
    return rows.length === jobs && rows.every((row) => row.state === 'charged') ? rows : undefined;
  });
  const cost = rows.reduce((sum, row) => sum + BigInt(row.charged ?? 'x'), 0n);
  expect(cost).toBeGreaterThan(0n);
  expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: keyId })).toEqual({ available: FUNDS - cost, reserved: 0n });
  expect((await checkBooks(r.store.db)).problems).toEqual([]);
};

describe('a payload refused 503 is sent again', () => {
  it(
    'over HTTP through a replica whose job owner briefly does not answer: once, charged once; a typed error when it stays away',
    { timeout: 120_000 },
    async () => {
      const schema = uniqueSchema('submit_retry');
      const a = await paidReplica(kit, schema, 'a', checks);
      const b = await paidReplica(kit, schema, 'b', checks, { forwardingBus: faultyBus });
      await until('the replicas to hear each other', () =>
        a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined,
      );
      const runtime = new EmbedRuntime();
      await startContributor(kit, a.url, runtime);
      const { key, ledger } = await funded(a);
      // Jobs are created on A (their owner); every other call lands on B, as a balancer without sticky sessions sends them.
      const puts: number[] = [];
      const split: typeof fetch = async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : input.toString());
        const create = (init?.method ?? 'GET') === 'POST' && url.pathname === '/v1/jobs';
        const response = await fetch((create ? a.url : b.url) + url.pathname + url.search, init);
        if (init?.method === 'PUT') puts.push(response.status);
        return response;
      };
      const sdk = new RequesterClient({ coordinatorUrl: a.url, apiKey: key.secret, checkReplicas: false, fetch: split });

      // The owner does not answer B twice (a NATS reconnect): B says 503, the SDK sends the payload again.
      faults.gone = 2;
      expectEmbedding(await sdk.run({ kind: 'embed', model: 'tiny-embed', inputs: ['sent again'] }), 'sent again');
      expect(puts).toEqual([503, 503, 202]);
      expect(runtime.jobs).toBe(1);

      // The owner takes the payload but its answer is lost: B says 503, and the repeat is refused 409 (one payload per
      // attempt), which the SDK takes as sent: the contributor gets the job once.
      puts.length = 0;
      faults.lost = 1;
      expectEmbedding(await sdk.run({ kind: 'embed', model: 'tiny-embed', inputs: ['taken, answer lost'] }), 'taken, answer lost');
      expect(puts).toEqual([503, 409]);
      expect(runtime.jobs).toBe(2);
      await expectChargedOnce(a, ledger, key.id, 2);

      // Away for good: the SDK stops after its tries with a typed error, and cancels the job (its reservation goes back).
      puts.length = 0;
      faults.gone = 1_000;
      const brief = new RequesterClient({
        coordinatorUrl: a.url,
        apiKey: key.secret,
        checkReplicas: false,
        fetch: split,
        retry: { attempts: 3, baseMs: 20, capMs: 50 },
      });
      const error = await brief.run({ kind: 'embed', model: 'tiny-embed', inputs: ['never sent'] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RetriesExhaustedError);
      expect((error as RetriesExhaustedError).attempts).toBe(3);
      expect(puts).toEqual([503, 503, 503]);
      faults.gone = 0;
      expect(runtime.jobs).toBe(2);
      await until('the reservation back', async () =>
        (await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).reserved === 0n ? true : undefined,
      );
      await expectChargedOnce(a, ledger, key.id, 2);
    },
  );

  it(
    'on the requester channel, a `submit` refused while the database is away: created again once it is back, charged once',
    { timeout: 120_000 },
    async () => {
      const target = new URL(TEST_DATABASE_URL);
      let relay = await startTcpRelay(Number(target.port || 5432));
      const port = Number(new URL(relay.url).port);
      kit.cleanup.push(() => relay.close());
      const through = new URL(TEST_DATABASE_URL);
      through.port = String(port);
      const schema = uniqueSchema('submit_db');
      await kit.store(schema, 'direct'); // the schema's first handle, which drops it at the end: not through the relay
      const r = await paidReplica(kit, schema, 'c', checks, { databaseUrl: through.toString() });
      const runtime = new EmbedRuntime();
      await startContributor(kit, r.url, runtime, undefined, 2);
      const { key, ledger } = await funded(r);
      const sdk = new RequesterClient({ coordinatorUrl: r.url, apiKey: key.secret, checkReplicas: false, channel: true, assignAhead: 2 });
      try {
        expectEmbedding(await sdk.run({ kind: 'embed', model: 'tiny-embed', inputs: ['before'] }), 'before');
        // The SDK holds an assignment: the next job goes up in one `submit`, which needs the database (its reservation).
        await until('an assignment held', async () => {
          const metrics = await (await fetch(`${r.url}/metrics`)).text();
          return /^spinneret_assignments_held [1-9]/m.test(metrics) ? true : undefined;
        });

        await relay.close();
        const away = Date.now();
        const back = new Promise<void>((resolve) =>
          setTimeout(() => {
            void startTcpRelay(Number(target.port || 5432), port).then((again) => {
              relay = again;
              resolve();
            });
          }, 1_500),
        );
        const result = await sdk.run(
          { kind: 'embed', model: 'tiny-embed', inputs: ['while away'] },
          { signal: AbortSignal.timeout(30_000) },
        );
        expectEmbedding(result, 'while away');
        // It could only be created once the database was back.
        expect(Date.now() - away).toBeGreaterThanOrEqual(1_400);
        await back;
        expect(runtime.jobs).toBe(2);
        await expectChargedOnce(r, ledger, key.id, 2);
      } finally {
        sdk.close();
      }
    },
  );
});
