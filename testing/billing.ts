/**
 * Test support (not used by the app): a paid network in one process — the real coordinator
 * on PGlite or PostgreSQL with the money side on the sandbox chain (deposit watcher, billing,
 * earnings), the model host's catalog, and contributor workers speaking the wire protocol
 * over real WebSockets, whose reported usage each test chooses.
 */
import { randomBytes } from 'node:crypto';
import { startModelHost } from '../modelhost/server.ts';
import type { BillingEnvelope } from '../protocol/billing.ts';
import type { Usage } from '../protocol/jobs.ts';
import type { JobKind } from '../protocol/manifest.ts';
import { type Coordinator, createCoordinator, type JobDone } from '../coordinator/app.ts';
import type { Money } from '../coordinator/earnings/local.ts';
import { FEES_NETWORK, PENALTIES, pendingAccount } from '../coordinator/ledger/accounts.ts';
import { Ledger } from '../coordinator/ledger/ledger.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { waitFor } from '../coordinator/store/testing.ts';
import { EventReader, FakeWorker } from '../coordinator/testing.ts';
import type { Relay } from '../coordinator/leases/relay.ts';
import { type LocalVerificationOptions, startVerification } from '../operator/verification.ts';
import type { Verification } from '../coordinator/verification/service.ts';
import { startTestMoney } from './money.ts';
import { disposeStore, openTestStore, testWallet } from './verification.ts';

/** A requester key of the paid network. */
export interface TestKey {
  id: string;
  secret: string;
  depositMemo: string;
}

export interface PaidNetwork {
  url: string;
  store: SqlStore;
  money: Money;
  ledger: Ledger;
  catalog: ModelCatalog;
  coordinator: Coordinator;
  /** Every job that ended with a result, in order. */
  done: JobDone[];
  /** Verification, when the network has it. */
  verification: Verification | undefined;
  /** A key with `funds` nanoTON deposited through the faucet (none: unfunded). */
  key(funds?: bigint): Promise<TestKey>;
  /** A welcomed worker serving the test models with a payout wallet (a new one unless `wallet` is given). */
  worker(options?: { slots?: number; wallet?: string; models?: string[] }): Promise<FakeWorker & { wallet: string }>;
  /** Binds a payout wallet to a connected device, in the store and on its live session, as a wallet session at `hello` would. */
  bind(contributorId: string, wallet: string): Promise<void>;
  /** A requester call with `key`'s secret. */
  api(key: TestKey, method: string, path: string, body?: unknown): Promise<Response>;
  /** Creates a job; the answer as parsed JSON with its status. */
  create(
    key: TestKey,
    envelope: BillingEnvelope,
    model?: string,
    kind?: JobKind,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Submits a payload of `ctBytes` sealed bytes for `attempt`. */
  submit(key: TestKey, jobId: string, attempt: number, ctBytes?: number): Promise<Response>;
  events(key: TestKey, jobId: string): Promise<EventReader>;
  /** The worker's next job frame, answered with one final chunk reporting `usage`. */
  finish(worker: FakeWorker, usage: Usage): Promise<string>;
  /** Waits until the money side has handled every finished job. */
  settled(): Promise<void>;
  /** A key's available and reserved nanoTON. */
  balance(key: TestKey): Promise<{ available: bigint; reserved: bigint }>;
  /** A wallet's pending nanoTON, the network's fees and penalties. */
  pending(wallet: string): Promise<bigint>;
  fees(): Promise<bigint>;
  penalties(): Promise<bigint>;
  close(): Promise<void>;
}

/** Random base64url of `bytes` decoded bytes: a stand-in ciphertext of that size. */
export function ciphertext(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

export async function startPaidNetwork(
  backend: 'PGlite' | 'PostgreSQL',
  options: {
    checkBudgetLimit?: bigint;
    env?: Record<string, string>;
    receipts?: boolean;
    /** Verification with these policy settings (checks on); without it, `receipts` gives verification with no checks. */
    policy?: LocalVerificationOptions['policy'];
    /** Known answers beside `tiny-embed`'s, for the verification's canaries. */
    knownAnswers?: LocalVerificationOptions['knownAnswers'];
  } = {},
): Promise<PaidNetwork> {
  const store = await openTestStore(backend);
  // Verification without checks, for its receipts: every credit is signed.
  const verification =
    options.policy !== undefined
      ? await startVerification({
          store,
          policy: options.policy,
          ...(options.knownAnswers !== undefined && { knownAnswers: options.knownAnswers }),
        })
      : options.receipts === true
        ? await startVerification({ store, policy: { canaryRate: 0, baseReplicationRate: 0, minReplicationRate: 0 } })
        : undefined;
  // The relay, as verification is attached to it: the tests bind wallets on live devices through it.
  let relay: Relay | null = null;
  if (verification !== undefined) {
    const attach = verification.attach.bind(verification);
    verification.attach = (r) => {
      relay = r;
      attach(r);
    };
  }
  const models = await startModelHost({ port: 0 });
  const catalog = await ModelCatalog.load(models.manifestUrl);
  const money = await startTestMoney(store, {
    ...(options.env !== undefined && { env: options.env }),
    ...(verification !== undefined && { verification }),
    ...(options.checkBudgetLimit !== undefined && { checkBudgetLimit: options.checkBudgetLimit }),
  });
  const ledger = new Ledger(store.db);
  const done: JobDone[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => console.error(message) };
  const coordinator = createCoordinator({
    store,
    logger,
    catalog,
    billing: money.billing,
    publicRoutes: [money.routes],
    ...(verification !== undefined && { verification }),
    onJobDone: (d) => {
      done.push(d);
      money.onJobDone(d);
    },
  });
  const server = await coordinator.listen({ port: 0 });
  const workers: FakeWorker[] = [];
  const api = (key: TestKey, method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const bind = async (contributorId: string, wallet: string): Promise<void> => {
    const record = await store.getContributor(contributorId);
    if (record === null) throw new Error(`contributor ${contributorId} is not in the store`);
    await store.upsertContributor({ ...record, wallet });
    const live = relay?.contributors.get(contributorId);
    if (live !== undefined) live.wallet = wallet;
  };
  const balance = (key: TestKey) => ledger.payerBalances({ kind: 'requester', apiKeyId: key.id });
  return {
    url: server.url,
    store,
    money,
    ledger,
    catalog,
    coordinator,
    done,
    verification,
    async key(funds = 0n) {
      const key = await coordinator.createApiKey(`requester ${randomBytes(3).toString('hex')}`, {
        jobsPerMinute: 10_000,
        maxInFlight: 100,
      });
      if (funds > 0n) await money.fund(key.depositMemo, funds);
      return key;
    },
    async worker({ slots = 1, wallet = testWallet(), models: served = ['tiny-decoder', 'tiny-embed'] } = {}) {
      const worker = await FakeWorker.ready(server.url, { models: served, consent: ['chat', 'embed'], slots: 0 });
      workers.push(worker);
      // As a wallet session binds it at `hello`; only then does the device offer slots.
      await bind(worker.contributorId, wallet);
      if (slots > 0) {
        worker.lease(slots);
        await worker.sync();
      }
      return Object.assign(worker, { wallet });
    },
    bind,
    api,
    async create(key, envelope, model = 'tiny-decoder', kind = 'chat') {
      const res = await api(key, 'POST', '/v1/jobs', { model, kind, billing: envelope });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    submit(key, jobId, attempt, ctBytes = 200) {
      return api(key, 'PUT', `/v1/jobs/${jobId}/payload`, { attempt, sealed: { enc: ciphertext(32), ct: ciphertext(ctBytes) } });
    },
    async events(key, jobId) {
      return new EventReader(await api(key, 'GET', `/v1/jobs/${jobId}/events`));
    },
    async finish(worker, usage) {
      const job = await worker.take('job', 20_000);
      worker.send({ v: 1, type: 'chunk', jobId: job.jobId, leaseId: job.leaseId, seq: 0, final: true, sealed: { ct: 'cmVzdWx0' }, usage });
      await worker.take('ack');
      return job.jobId;
    },
    async settled() {
      await waitFor(async () => {
        const { rows } = await store.db.query<{ n: unknown }>(
          `SELECT count(*) AS n FROM job_billing WHERE state <> 'reserved' AND job_id = ANY($1::text[])`,
          [done.map((d) => d.jobId)],
        );
        return Number(rows[0]?.n) === done.length;
      });
    },
    balance,
    async pending(wallet) {
      return -(await ledger.accountBalance(pendingAccount(wallet)));
    },
    async fees() {
      return -(await ledger.accountBalance(FEES_NETWORK));
    },
    async penalties() {
      return -(await ledger.accountBalance(PENALTIES));
    },
    async close() {
      for (const worker of workers) worker.close();
      money.stop();
      await coordinator.close();
      await server.close().catch(() => undefined);
      await models.close();
      await money.idle();
      await disposeStore(store);
    },
  };
}
