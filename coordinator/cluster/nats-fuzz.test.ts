/**
 * Hostile messages on the replicas' NATS bus, on real PostgreSQL and NATS with the real billing,
 * ledger and earnings. Two replicas subscribe as they do in production; every subject either of
 * them subscribes to (recorded through its bus, so a new subscription the fuzzer does not know
 * fails the test) gets garbage bytes, text that is not JSON, JSON of the wrong shape, bodies built
 * from the subject's own schema with hostile values (NUL, lone surrogates, strings up to NATS
 * `max_payload`, ids off the protocol's patterns, numbers out of range), well-formed bodies
 * naming another replica or the receiver itself, replays of real traffic, and requests whose
 * reply goes to another replica's subject. Nothing crashes or logs an unexpected error, every
 * request is answered with a typed refusal or dropped and counted, heap after GC stays flat over
 * the rounds, and a real job then runs across the two replicas, answered once, books balanced.
 * `NATS_FUZZ_ROUNDS` sets the rounds (`npm run test:faults` runs 100); `FUZZ_SEED` replays a run.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceEmbed } from '../../modelhost/reference.ts';
import { CallAnswer, Granted, HoldsAnswer } from '../../protocol/cluster.ts';
import { RequesterClient } from '../../requester/client.ts';
import { NATS_URL, paidReplica, type PaidReplica, ReplicaKit, until, walletContributor } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import { forged, nearLimit } from '../../testing/bus-fuzz.ts';
import { hostile, hostileValue, rng, sample } from '../edges/fuzz.ts';
import { checkBooks } from '../ledger/books.ts';
import { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../log.ts';
import { uniqueSchema } from '../store/testing.ts';
import { testWallet } from '../wallets/test-wallet.ts';
import type { Bus } from './bus.ts';

const ROUNDS = Number(process.env['NATS_FUZZ_ROUNDS'] ?? 3);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261208);
const DEAD_AFTER_MS = 1_000;
/** Slots lent in a replica's name (forged claims) come back this long after. */
const LEND_FOR_MS = 1_000;
/** Messages to each subscription per round. */
const SHOTS = 6;

/**
 * Every subject a replica subscribes to, by its last word: the field that names the sending
 * replica (what an impersonator forges), and the answer's schema for a request.
 */
const SUBJECTS: Record<string, { sender?: string; answer?: v.GenericSchema }> = {
  alive: { sender: 'replica' },
  policy: { sender: 'replica' },
  claim: { sender: 'owner', answer: Granted },
  down: { sender: 'owner' },
  up: { sender: 'home' },
  release: { sender: 'owner' },
  gone: { sender: 'home' },
  holds: { answer: HoldsAnswer },
  call: { sender: 'from', answer: CallAnswer },
  part: {},
  stop: { sender: 'from' },
};

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = (): number => {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Rand = () => number;
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;

interface Subscribed {
  replica: string;
  subject: string;
  kind: string;
  schema: v.GenericSchema;
}

interface Watched {
  replica: PaidReplica;
  bus: Bus;
  /** What the replica logged as an error or its bus reported, but for the drops of malformed messages (counted in `drops`). */
  errors: string[];
  drops: number;
}

const schema = uniqueSchema('natsfuzz');
const prefix = `spinneret.${schema}`;
const kit = new ReplicaKit();
const subscribed: Subscribed[] = [];
/** Real traffic between the replicas before the fuzzing (a job's claim, its lease going down, heartbeats), kept for replays. */
const heard: { subject: string; data: Uint8Array }[] = [];
let sniffer: Subscription;
let attacker: NatsConnection;
let a: Watched;
let b: Watched;
let contributorId = '';
let fuzzKey = '';
const jobs: string[] = [];
const runtime = new EmbedRuntime();

const watched = async (replicaId: string): Promise<Watched> => {
  const errors: string[] = [];
  const w = { drops: 0 };
  /** A drop of a malformed message, with its reason, is what a replica should log; it is counted, not kept (the heap is measured). */
  const note = (line: string): void => {
    if (/^dropped a (malformed message|message that is not JSON) on /.test(line)) w.drops++;
    else if (errors.length < 100) errors.push(line);
  };
  const logger: Logger = {
    info: () => undefined,
    warn: () => undefined,
    error: (message, fields) => note(`${message} ${JSON.stringify(fields ?? {}).slice(0, 300)}`),
  };
  let bus: Bus | undefined;
  const replica = await paidReplica(
    kit,
    schema,
    replicaId,
    { canaryRate: 0, replicationRate: 0, policy: { deaf: false } },
    {
      logger,
      onBusError: (message, err) => note(`${message} ${String(err).slice(0, 300)}`),
      routing: { deadAfterMs: DEAD_AFTER_MS, lendForMs: LEND_FOR_MS },
      bus: (real) => {
        bus = {
          publish: (subject, body) => real.publish(subject, body),
          request: (subject, body, timeoutMs) => real.request(subject, body, timeoutMs),
          subscribe(subject, schema, handler) {
            subscribed.push({ replica: replicaId, subject, kind: subject.split('.').at(-1) ?? '', schema });
            real.subscribe(subject, schema, handler);
          },
          get dropped() {
            return real.dropped;
          },
          get maxPayload() {
            return real.maxPayload;
          },
          close: () => real.close(),
        };
        return bus;
      },
    },
  );
  if (bus === undefined) throw new Error('the replica did not take the wrapped bus');
  return {
    replica,
    bus,
    errors,
    get drops() {
      return w.drops;
    },
  };
};

beforeAll(async () => {
  attacker = await connect({ servers: NATS_URL, name: 'nats-fuzz' });
  sniffer = attacker.subscribe(`${prefix}.>`, {
    callback: (err, msg) => {
      if (err === null && heard.length < 500) heard.push({ subject: msg.subject, data: msg.data });
    },
  });
  a = await watched('a');
  b = await watched('b');
  await until('the replicas to hear each other', () =>
    a.replica.routing.peers.includes('b') && b.replica.routing.peers.includes('a') ? true : undefined,
  );
  contributorId = await walletContributor(kit, b.replica, runtime, testWallet('fuzzed device').address);
  await until('B to say what its contributor serves', () => (a.replica.routing.peerServes('tiny-embed', 'embed') ? true : undefined));
  const key = await a.replica.coordinator.createApiKey('fuzz', { jobsPerMinute: 1_000_000, maxInFlight: 1000 });
  fuzzKey = key.secret;
  await new Ledger(a.replica.store.db).deposit({
    lt: 1n,
    hash: 'f1'.repeat(32),
    amount: 10_000_000n,
    to: { kind: 'requester', apiKeyId: key.id },
    note: 'nats fuzz',
  });
  await a.replica.money.billing.refreshBudget();
  // Jobs A holds, waiting for a payload (one leased to B's contributor), for forged calls, claims and results to name.
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${a.replica.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fuzzKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-embed', kind: 'embed', billing: { inputTokens: 8, maxOutputTokens: 0 } }),
    });
    expect(res.status).toBe(201);
    jobs.push(((await res.json()) as { jobId: string }).jobId);
  }
}, 60_000);

afterAll(async () => {
  await attacker?.close();
  await kit.dispose();
});

const world = () => ({ contributorId, jobs, apiKey: fuzzKey });

interface Tally {
  sent: number;
  requests: number;
  answered: number;
  unanswered: number;
  problems: string[];
}

/** One message to one subscription: published, or sent as a request whose answer is checked. */
async function shoot(target: Subscribed, r: Rand, tally: Tally, maxPayload: number): Promise<void> {
  const other = target.replica === 'a' ? 'b' : 'a';
  const sender = pick(r, [other, other, target.replica, `ghost-${Math.floor(r() * 50)}`]);
  const enc = new TextEncoder();
  const variant = Math.floor(r() * 8);
  let data: Uint8Array;
  let subject = target.subject;
  switch (variant) {
    case 0: // garbage bytes
      data = crypto.getRandomValues(new Uint8Array(Math.floor(r() * 4096)));
      break;
    case 1: // not JSON
      data = enc.encode(pick(r, ['', '{', 'NaN', 'undefined', "{'a':1}", '\u0000\u0001', '['.repeat(100_000), '{"a":1}}']));
      break;
    case 2: // JSON of the wrong shape
      data = enc.encode(JSON.stringify(hostileValue(r, [contributorId, ...jobs])) ?? 'null');
      break;
    case 3: // the subject's own schema, with one hostile value
      data = enc.encode(JSON.stringify(hostile(sample(target.schema, r), r, [contributorId, ...jobs, 'a', 'b'])) ?? 'null');
      break;
    case 4: // well formed, naming another replica (or the receiver itself, or one that does not exist)
      data = enc.encode(JSON.stringify(forged(target.kind, sender, world(), r)));
      break;
    case 5: // well formed but for one string grown to the server's limit
      data = enc.encode(nearLimit(forged(target.kind, sender, world(), r), maxPayload, r));
      if (data.byteLength > maxPayload) data = data.slice(0, maxPayload);
      break;
    case 6: {
      // a replay of real traffic, to where it went or to another subject
      const old = heard.length > 0 ? pick(r, heard) : { subject: target.subject, data: enc.encode('{}') };
      data = old.data;
      if (r() < 0.5) subject = old.subject;
      break;
    }
    default: {
      // its answer sent to another replica's subject (a confused deputy)
      tally.sent++;
      const into = pick(
        r,
        subscribed.filter((s) => s.replica !== target.replica),
      ).subject;
      attacker.publish(subject, enc.encode(JSON.stringify(forged(target.kind, sender, world(), r))), { reply: into });
      return;
    }
  }
  tally.sent++;
  const kind = subject.split('.').at(-1) ?? '';
  const answer = SUBJECTS[kind]?.answer;
  if (answer === undefined || r() < 0.2) {
    attacker.publish(subject, data);
    return;
  }
  tally.requests++;
  // A well-formed request must be answered (it has long, on a loaded machine); any other one is dropped, and counted.
  const schema = subscribed.find((s) => s.subject === subject)?.schema;
  const valid = schema !== undefined && wellFormed(schema, data);
  let raw: unknown;
  try {
    const msg = await attacker.request(subject, data, { timeout: valid ? 15_000 : 1_000 });
    raw = msg.json();
  } catch (err) {
    tally.unanswered++;
    if (valid) {
      tally.problems.push(
        `${kind}: a well-formed request went unanswered (${String(err)}): ${new TextDecoder().decode(data).slice(0, 100)}`,
      );
    }
    return;
  }
  tally.answered++;
  const parsed = v.safeParse(answer, raw);
  if (!parsed.success) return void tally.problems.push(`${kind}: an answer off its schema: ${JSON.stringify(raw).slice(0, 200)}`);
  const out = parsed.output as { status?: number; body?: string };
  if (kind !== 'call' || out.status === undefined) return;
  if (out.status >= 500) tally.problems.push(`call: ${out.status} ${out.body?.slice(0, 200)}`);
  if (out.status >= 400 && !/"code"\s*:/.test(out.body ?? ''))
    tally.problems.push(`call: untyped ${out.status} ${out.body?.slice(0, 200)}`);
}

function wellFormed(schema: v.GenericSchema, data: Uint8Array): boolean {
  try {
    return v.safeParse(schema, JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))).success;
  } catch {
    return false;
  }
}

async function round(r: Rand, tally: Tally, maxPayload: number): Promise<void> {
  await Promise.all(subscribed.flatMap((t) => Array.from({ length: SHOTS }, () => shoot(t, r, tally, maxPayload))));
  await attacker.flush();
}

describe('hostile messages on the replicas’ bus', () => {
  it('knows every subject the replicas subscribe to', () => {
    for (const replica of ['a', 'b']) {
      const kinds = subscribed.filter((s) => s.replica === replica).map((s) => s.kind);
      expect(kinds.sort()).toEqual(Object.keys(SUBJECTS).sort());
    }
    for (const s of subscribed) expect(s.subject.startsWith(`${prefix}.`)).toBe(true);
  });

  it(
    `survives ${ROUNDS} rounds of hostile messages on every subject; heap stays flat; a real job runs after, once, books balanced`,
    { timeout: Math.max(180_000, ROUNDS * 20_000) },
    async () => {
      sniffer.unsubscribe();
      const r = rng(SEED);
      const tally: Tally = { sent: 0, requests: 0, answered: 0, unanswered: 0, problems: [] };
      const maxPayload = a.bus.maxPayload;
      const dropped = (): number => a.bus.dropped + b.bus.dropped;
      await round(r, tally, maxPayload); // warm up: code paths, caches, JIT
      await sleep(DEAD_AFTER_MS * 2);
      const before = heapAfterGc();
      const droppedBefore = dropped();
      const unansweredBefore = tally.unanswered;
      for (let i = 0; i < ROUNDS; i++) await round(r, tally, maxPayload);
      // Forged peers are forgotten once silent.
      await sleep(DEAD_AFTER_MS * 2);
      const after = heapAfterGc();
      console.log(
        `nats fuzz: ${tally.sent} messages over ${subscribed.length} subscriptions (seed ${SEED}); ${tally.requests} requests, ${tally.answered} answered; dropped ${dropped()}; heap ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB`,
      );
      expect(tally.problems).toEqual([]);
      // Every request not answered was dropped, and counted, by the replica it went to.
      expect(dropped() - droppedBefore).toBeGreaterThanOrEqual(tally.unanswered - unansweredBefore);
      // What the replicas logged as errors: only drops of malformed messages with their reason (a line per subject now and then).
      expect(a.errors).toEqual([]);
      expect(b.errors).toEqual([]);
      expect(a.drops + b.drops).toBeGreaterThan(0);
      expect(a.drops + b.drops).toBeLessThan(dropped());
      expect(after).toBeLessThan(before * 1.1 + 4 * 2 ** 20);
      expect(a.replica.routing.peers).toEqual(['b']);
      expect(b.replica.routing.peers).toEqual(['a']);

      // A real job after it: created on A, its calls sent to B, run by B's contributor; one answer, books balanced.
      for (const jobId of jobs) {
        await fetch(`${a.replica.url}/v1/jobs/${jobId}`, { method: 'DELETE', headers: { authorization: `Bearer ${fuzzKey}` } });
      }
      const ledger = new Ledger(a.replica.store.db);
      const key = await a.replica.coordinator.createApiKey('after the fuzz');
      await ledger.deposit({ lt: 2n, hash: 'f2'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: key.id }, note: 't' });
      await a.replica.money.billing.refreshBudget();
      const wallet = testWallet('fuzzed device').address;
      const pendingBefore = (await ledger.balances(wallet)).pending;
      const ran = runtime.jobs;
      const requester = new RequesterClient({
        coordinatorUrl: a.replica.url,
        apiKey: key.secret,
        checkReplicas: false,
        fetch: (input, init) => {
          const url = new URL(input instanceof Request ? input.url : input.toString());
          const create = (init?.method ?? 'GET') === 'POST' && url.pathname === '/v1/jobs';
          return fetch((create ? a.replica.url : b.replica.url) + url.pathname + url.search, init);
        },
      });
      const text = 'a job after the bus was fuzzed';
      const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
      await requester.idle();
      if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
      const expected = referenceEmbed([text])[0] ?? [];
      result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
      expect(runtime.jobs - ran).toBe(1);
      const done = await until('the job in the database', async () => {
        const { rows } = await a.replica.store.db.query<{ id: string; prompt_tokens: number; contributor_id: string }>(
          `SELECT id, prompt_tokens, contributor_id FROM jobs WHERE api_key_id = $1 AND state = 'done'`,
          [key.id],
        );
        return rows.length > 0 ? rows : undefined;
      });
      expect(done).toHaveLength(1);
      expect(done[0]?.contributor_id).toBe(contributorId);
      const events = await fetch(`${b.replica.url}/v1/jobs/${done[0]?.id}/events`, { headers: { authorization: `Bearer ${key.secret}` } });
      const finals = (await events.text())
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { type: string; final?: boolean })
        .filter((e) => e.type === 'chunk' && e.final === true);
      expect(finals).toHaveLength(1);
      const gross = BigInt(Number(done[0]?.prompt_tokens)) * 1_000n;
      const share = gross - gross / 10n;
      await until('the charge', async () => ((await ledger.balances(wallet)).pending === pendingBefore + share ? true : undefined));
      await Promise.all([a.replica.money.idle(), b.replica.money.idle()]);
      expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({ available: 10_000_000n - gross, reserved: 0n });
      expect((await ledger.balances(wallet)).pending).toBe(pendingBefore + share);
      expect((await checkBooks(a.replica.store.db)).problems).toEqual([]);
    },
  );
});
