/**
 * Test support (not used by the app): a whole verified network in one Node process — the
 * real coordinator on PGlite with the money side and verification, real Contributor loops
 * over WebSockets running `tiny-embed` from the float64 reference (honest) or answering
 * wrong vectors (lying), and a requester SDK.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { keyPairFromSeed } from '@ton/crypto';
import { toNano } from '@ton/core';
import { WalletContractV4 } from '@ton/ton';
import { startModelHost } from '../modelhost/server.ts';
import { embedTokenizer, referenceEmbed } from '../modelhost/reference.ts';
import type { JobRequest, JobResult, StreamChunk } from '../protocol/jobs.ts';
import { seededRandom } from '../protocol/random.ts';
import { RequesterClient, type ReplicaCheck } from '../requester/client.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { FakeRuntime } from '../worker/network/fake-runtime.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { createCoordinator, type JobDone } from '../coordinator/app.ts';
import { startMoney } from '../coordinator/earnings/local.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import { openStore } from '../coordinator/store/index.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../coordinator/store/testing.ts';
import { CanaryDataError, KnownAnswerCanaries } from '../coordinator/verification/canaries.ts';
import { tinyEmbedKnownAnswers } from '../operator/known-answers/tiny-embed.ts';
import { type VerificationConfig, VerificationPolicy } from '../coordinator/verification/policy.ts';
import { createVerification, type Verification } from '../coordinator/verification/service.ts';

const embeddings = new Map<string, number[]>();

/** The float64 reference, rounded to float32 as a WebGPU engine would return it. */
function honestEmbedding(text: string): number[] {
  let e = embeddings.get(text);
  if (e === undefined) {
    e = (referenceEmbed([text])[0] ?? []).map((x) => Math.fround(x));
    embeddings.set(text, e);
  }
  return e;
}

/**
 * Runs `tiny-embed` jobs: honestly, or (with `lieRate` > 0) answering a random unit vector of
 * the right size for that share of its jobs, as a contributor skimping on work would.
 */
export class EmbedRuntime extends FakeRuntime {
  jobs = 0;
  readonly #lieRate: number;
  readonly #random: () => number;

  constructor(options: { lieRate?: number; seed?: number } = {}) {
    super();
    this.#lieRate = options.lieRate ?? 0;
    this.#random = seededRandom(options.seed ?? 1);
  }

  override async run(
    request: unknown,
    options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {},
  ): Promise<{ result: JobResult }> {
    const job = request as JobRequest;
    if (job.kind !== 'embed' || job.model !== 'tiny-embed') return super.run(request, options);
    this.jobs++;
    const lie = this.#random() < this.#lieRate;
    const vectors = job.inputs.map((text) => (lie ? this.#noise(honestEmbedding(text).length) : honestEmbedding(text)));
    const promptTokens = job.inputs.reduce((n, text) => n + embedTokenizer().encode(text).ids.length, 0);
    return { result: { kind: 'embed', embeddings: vectors, usage: { promptTokens, completionTokens: 0 } } };
  }

  override async models(): ReturnType<FakeRuntime['models']> {
    return (await super.models()).map((m) => (m.id === 'embed-model' ? { ...m, id: 'tiny-embed' } : m));
  }

  #noise(dim: number): number[] {
    const v = Array.from({ length: dim }, () => this.#random() * 2 - 1);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / norm);
  }
}

/** A payout address for a contributor, as the wallet link would store it. */
export function testWallet(): string {
  const { publicKey } = keyPairFromSeed(randomBytes(32));
  return WalletContractV4.create({ workchain: 0, publicKey }).address.toString({ bounceable: false, testOnly: true });
}

/** Settings of {@link startVerifiedNetwork}. */
export interface NetworkOptions {
  /** One entry per contributor: its lie rate (0: honest). */
  contributors: readonly number[];
  policy: Omit<VerificationConfig, 'random' | 'clock'>;
  seed: number;
  /** Verification window of credits, ms. Default 1 h (tests settle by hand). */
  windowMs?: number;
  verdictWindowMs?: number;
  /** Where the coordinator keeps its tables: PGlite in memory, or a fresh schema on the test PostgreSQL. */
  backend: 'PGlite' | 'PostgreSQL';
  /** Use this store instead (a restart test); it is left open. */
  store?: SqlStore;
  /** The requester key's limit of unfinished jobs. Default 100. */
  maxInFlight?: number;
  /** nanoTON the faucet deposits for the requester key. Default 1000 TON. */
  requesterFunds?: bigint;
  /** nanoTON the faucet deposits into the check budget. Default 1000 TON. */
  budgetFunds?: bigint;
}

/** A running network; {@link VerifiedNetwork.close} stops all of it. */
export interface VerifiedNetwork {
  url: string;
  store: SqlStore;
  verification: Verification;
  policy: VerificationPolicy;
  money: Awaited<ReturnType<typeof startMoney>>;
  requester: RequesterClient;
  /** The requester's API key secret. */
  apiKey: string;
  createApiKey(label: string): Promise<{ id: string; secret: string; depositMemo: string }>;
  checks: ReplicaCheck[];
  /** Every job that ended with a result, in order. */
  done: JobDone[];
  members: { contributor: Contributor; runtime: EmbedRuntime; id: string; wallet: string; lieRate: number }[];
  /** Runs `count` embed jobs, `parallel` at a time, with sentences from `seed`; stops early when `until()` holds. */
  runJobs(count: number, parallel: number, until?: () => boolean): Promise<number>;
  /** Stops everything; the store too, unless it was given or `keepStore` is set. */
  close(options?: { keepStore?: boolean }): Promise<void>;
}

export async function startVerifiedNetwork(options: NetworkOptions): Promise<VerifiedNetwork> {
  const store = options.store ?? (await openTestStore(options.backend));
  const clock = { now: () => Date.now() };
  const policy = new VerificationPolicy({ ...options.policy, random: seededRandom(options.seed), clock });
  const answers = tinyEmbedKnownAnswers(32, options.seed + 7);
  if (answers.length === 0) throw new CanaryDataError('no known answers');
  const verification = createVerification({
    db: store.db,
    policy,
    canaries: new KnownAnswerCanaries(answers, seededRandom(options.seed + 13)),
    clock,
    verdictWindowMs: options.verdictWindowMs ?? 60_000,
  });
  await verification.start();
  const money = await startMoney({
    store,
    threshold: 1n,
    windowMs: options.windowMs ?? 3_600_000,
    payoutIntervalMs: 3_600_000,
    settleIntervalMs: 3_600_000,
    env: {},
    verification,
  });
  // The model host the catalog (and the SDK's tokenizer) is read from, as in `npm start`.
  const models = await startModelHost({ port: 0 });
  const done: JobDone[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => console.error(message) };
  const coordinator = createCoordinator({
    store,
    logger,
    verification,
    onJobDone: (d) => {
      done.push(d);
      money.onJobDone(d);
    },
    publicRoutes: [money.routes],
    billing: money.billing,
    catalog: await ModelCatalog.load(models.manifestUrl),
    maxWaitMs: 5_000,
  });
  const server = await coordinator.listen({ port: 0 });
  const key = await coordinator.createApiKey('verified requester', { jobsPerMinute: 100_000, maxInFlight: options.maxInFlight ?? 100 });
  // The requester and the check budget are funded as `npm start` funds them: faucet transfers on the sandbox chain.
  await money.fund(key.depositMemo, options.requesterFunds ?? toNano('1000'));
  await money.fund(money.budgetMemo, options.budgetFunds ?? toNano('1000'));
  const checks: ReplicaCheck[] = [];
  const requester = new RequesterClient({ coordinatorUrl: server.url, apiKey: key.secret, onCheck: (c) => checks.push(c) });
  const members: VerifiedNetwork['members'] = [];
  for (const [i, lieRate] of options.contributors.entries()) {
    const runtime = new EmbedRuntime({ lieRate, seed: options.seed * 31 + i });
    const contributor = new Contributor({
      coordinatorUrl: `${server.url.replace(/^http/, 'ws')}/v1/contributor`,
      runtime,
      identity: await loadOrCreateIdentity(new MemoryKeyStore()),
      consent: ['embed'],
      client: { name: 'test', version: '0.0.0' },
      webSocket: WebSocket,
    });
    contributor.start();
    const id = await waitForId(contributor);
    const wallet = testWallet();
    const record = await store.getContributor(id);
    if (record === null) throw new Error(`contributor ${id} is not in the store`);
    await store.upsertContributor({ ...record, wallet });
    members.push({ contributor, runtime, id, wallet, lieRate });
  }
  const sentences = seededRandom(options.seed + 99);
  const words = ['the', 'model', 'runs', 'in', 'a', 'browser', 'tab', 'and', 'earns', 'for', 'its', 'owner', 'small', 'gpu', 'work'];
  const sentence = (): string =>
    Array.from({ length: 4 + Math.floor(sentences() * 5) }, () => words[Math.floor(sentences() * words.length)]).join(' ');
  return {
    url: server.url,
    store,
    verification,
    policy,
    money,
    requester,
    apiKey: key.secret,
    createApiKey: (label) => coordinator.createApiKey(label),
    checks,
    done,
    members,
    async runJobs(count, parallel, until = () => false) {
      let started = 0;
      const lane = async (): Promise<void> => {
        while (started < count && !until()) {
          started++;
          await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [sentence()] });
        }
      };
      await Promise.all(Array.from({ length: parallel }, lane));
      return started;
    },
    async close({ keepStore = false } = {}) {
      await requester.idle();
      for (const m of members) await m.contributor.stop({ drain: false });
      money.stop();
      await coordinator.close();
      await server.close().catch(() => undefined);
      await models.close();
      // Credits and receipts are written after each job, outside the coordinator: let them land.
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        const { rows } = await store.db.query<{ n: unknown }>('SELECT count(*) AS n FROM verification_receipts');
        if (Number(rows[0]?.n) >= done.length) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await verification.idle();
      await money.idle();
      if (!keepStore && options.store === undefined) await disposeStore(store);
    },
  };
}

/** A migrated store on `backend`; PostgreSQL gets a schema of its own. */
export async function openTestStore(backend: NetworkOptions['backend']): Promise<SqlStore> {
  if (backend === 'PGlite') return openStore({ databaseUrl: '' });
  try {
    return await openStore({ databaseUrl: TEST_DATABASE_URL, schema: uniqueSchema('verif') });
  } catch (err) {
    throw new Error(
      `PostgreSQL at ${TEST_DATABASE_URL} is unreachable (${String(err)}); start it on 127.0.0.1:5432 or set TEST_DATABASE_URL.`,
      {
        cause: err,
      },
    );
  }
}

/** Closes a store from {@link openTestStore}, dropping its PostgreSQL schema. */
export async function disposeStore(store: SqlStore): Promise<void> {
  const { rows } = await store.db.query<{ schema: string }>('SELECT current_schema() AS schema');
  const schema = rows[0]?.schema;
  try {
    if (schema !== undefined && schema.startsWith('spn_test_')) await dropSchema(store, schema);
  } finally {
    await store.close();
  }
}

/**
 * Drops a test schema. A write still landing from a closed part of the network can hold a lock
 * that PostgreSQL resolves as a deadlock against the drop; the drop is then tried again.
 */
async function dropSchema(store: SqlStore, schema: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await store.db.query(`DROP SCHEMA "${schema}" CASCADE`);
      return;
    } catch (err) {
      const deadlock = (err as { code?: unknown }).code === '40P01';
      if (!deadlock || attempt >= 5) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

async function waitForId(contributor: Contributor): Promise<string> {
  const until = Date.now() + 5_000;
  for (;;) {
    const status = contributor.status();
    if (status.state === 'connected' && status.contributorId !== null) return status.contributorId;
    if (Date.now() > until) throw new Error(`the contributor did not connect: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
