/**
 * Hostile input, built from the protocol's schemas, over real sockets to a coordinator, the
 * OpenAI gateway, a model host and the app server: nothing crashes, nothing answers 5xx, every
 * refusal is typed, memory stays flat, and a real job completes afterwards. `FUZZ_INPUTS` sets
 * the count (`npm run test:faults` sends 100,000); `FUZZ_SEED` replays a run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as v from 'valibot';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelHost, type ModelHost } from '../../modelhost/server.ts';
import { RequesterClient } from '../../requester/client.ts';
import { createGateway, listen } from '../../requester/gateway.ts';
import { startAppServer, type RunningServer } from '../../scripts/serve.ts';
import { ChatBody, EmbeddingsBody } from '../../requester/openai.ts';
import { type Assignment, ContributorMessage, CreateJob, SubmitPayload, Verdict } from '../../protocol/wire.ts';
import { FakeWorker, startCoordinator, TEST_ENVELOPE } from '../testing.ts';
import { frame, hostile, rng, sample } from './fuzz.ts';

const INPUTS = Number(process.env['FUZZ_INPUTS'] ?? 500);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261207);
const TIMEOUT_MS = Math.max(120_000, INPUTS * 10);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

let coordinator: Awaited<ReturnType<typeof startCoordinator>>;
let gateway: { url: string; close(): Promise<void> };
let models: ModelHost;
let app: RunningServer;
const jobIds: string[] = [];

beforeAll(async () => {
  coordinator = await startCoordinator();
  const { secret } = await coordinator.coordinator.createApiKey('gateway', { jobsPerMinute: 1_000_000, maxInFlight: 1000 });
  gateway = await listen(
    createGateway({ client: new RequesterClient({ coordinatorUrl: coordinator.url, apiKey: secret }) }),
    0,
    '127.0.0.1',
  );
  models = await startModelHost({ port: 0 });
  const dist = mkdtempSync(join(tmpdir(), 'fuzz-dist-'));
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>app</title>');
  app = await startAppServer({ distDir: dist, config: { manifestUrl: models.manifestUrl } });
  for (let i = 0; i < 3; i++) jobIds.push((await coordinator.createJob()).jobId);
}, 60_000);

afterAll(async () => {
  await Promise.all([gateway?.close(), models?.close(), app?.close()]);
  await coordinator?.close();
});

interface Tally {
  sent: number;
  byStatus: Record<number, number>;
  untyped: string[];
  serverErrors: string[];
}

type Shot = (r: () => number, tally: Tally) => Promise<void>;

const s = (schema: unknown) => schema as v.GenericSchema;

/** One HTTP request; a 5xx or an untyped refusal is recorded. */
async function http(tally: Tally, url: string, init: RequestInit, typed: boolean): Promise<void> {
  tally.sent++;
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    // A refused body may be answered before it is read; the socket closing then is clean.
    if (String((err as Error).cause ?? err).match(/ECONNRESET|EPIPE|other side closed|UND_ERR_SOCKET/)) return;
    tally.serverErrors.push(`${init.method} ${url.slice(0, 120)}: ${String(err)}`);
    return;
  }
  tally.byStatus[res.status] = (tally.byStatus[res.status] ?? 0) + 1;
  const text = await res.text().catch(() => '');
  if (res.status >= 500) tally.serverErrors.push(`${res.status} ${init.method} ${url.slice(0, 120)}: ${text.slice(0, 200)}`);
  else if (typed && res.status >= 400) {
    const body = (() => {
      try {
        return JSON.parse(text) as { error?: { code?: unknown; type?: unknown } };
      } catch {
        return null;
      }
    })();
    if (body?.error === undefined || (body.error.code === undefined && body.error.type === undefined))
      tally.untyped.push(`${res.status} ${init.method} ${url.slice(0, 80)}: ${text.slice(0, 120)}`);
  }
}

const hostileSegment = (r: () => number): string =>
  r() < 0.5 ? pick(r, jobIds) : pick(r, ['%00', '%E0%A4%A', '%ED%A0%80', 'x'.repeat(300), '..%2f..%2fetc', '%01', 'a b', '😀', 'job%0A1']);
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;

const coordinatorRoutes: Array<[string, (r: () => number) => string, v.GenericSchema | null]> = [
  ['POST', () => '/v1/jobs', s(CreateJob)],
  ['PUT', (r) => `/v1/jobs/${hostileSegment(r)}/payload`, s(SubmitPayload)],
  ['GET', (r) => `/v1/jobs/${hostileSegment(r)}/events`, null],
  ['DELETE', (r) => `/v1/jobs/${hostileSegment(r)}`, null],
  ['POST', (r) => `/v1/jobs/${hostileSegment(r)}/verdict`, s(Verdict)],
  ['GET', (r) => `/v1/contributors/${hostileSegment(r)}`, null],
  ['GET', (r) => `/v1/contributors/${hostileSegment(r)}/receipts?limit=${pick(r, ['1', '-1', '1e9', '%00', 'abc'])}`, null],
  ['GET', (r) => `/v1/models/${hostileSegment(r)}`, null],
  ['GET', () => '/v1/models', null],
  ['GET', () => '/v1/account', null],
  ['POST', () => '/v1/wallet/payload', null],
  ['POST', () => '/v1/wallet/proof', null],
  ['POST', () => '/v1/enroll', null],
  ['POST', () => '/v1/enrollment-tokens', null],
  ['POST', (r) => `/v1/fleet/${hostileSegment(r)}/control`, null],
  ['GET', (r) => `/v1/earnings/${hostileSegment(r)}`, null],
  ['GET', () => '/healthz', null],
];

const shots: Shot[] = [
  // The coordinator's HTTP API, with and without the API key.
  async (r, tally) => {
    const [method, path, schema] = pick(r, coordinatorRoutes);
    const body =
      method === 'GET' || method === 'DELETE'
        ? undefined
        : frame(hostile(schema === null ? { deviceKey: 'A'.repeat(43) } : sample(schema, r), r, jobIds), r);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (r() < 0.8) headers['authorization'] = coordinator.auth;
    await http(tally, coordinator.url + path(r), { method, headers, ...(body !== undefined && { body }) }, true);
  },
  // The OpenAI gateway.
  async (r, tally) => {
    const [path, schema] = pick(r, [
      ['/v1/chat/completions', s(ChatBody)],
      ['/v1/embeddings', s(EmbeddingsBody)],
    ] as const);
    const body = frame(hostile(sample(schema, r), r), r);
    const type = r() < 0.9 ? 'application/json' : pick(r, ['text/plain', 'application/x-www-form-urlencoded']);
    const headers: Record<string, string> = { 'content-type': type };
    if (r() < 0.1) headers['origin'] = 'https://evil.example';
    await http(tally, gateway.url + path, { method: 'POST', headers, body }, true);
  },
  // The model host and the app server: paths, methods and Host headers.
  async (r, tally) => {
    const base = r() < 0.5 ? models.url : app.url;
    const path = pick(r, [
      '/manifest.json',
      '/',
      '/spinneret.json',
      '/tonconnect-manifest.json',
      '/__corrupt/x',
      '/%E0%A4%A',
      '/..%2f..%2fetc/passwd',
      '/a%00b',
      `/${'x'.repeat(5000)}`,
      '/spinneret-test/tiny-q4/resolve/main/onnx/model_q4.onnx',
    ]);
    await http(tally, base + path, { method: pick(r, ['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'OPTIONS']) }, false);
  },
];

/** One contributor socket: frames built from the wire schemas, a forged or replayed hello among them. */
async function socketRound(r: () => number, frames: number, tally: Tally): Promise<void> {
  const welcomed = r() < 0.5;
  const worker = welcomed ? await FakeWorker.ready(coordinator.url, { slots: 1 }) : await FakeWorker.connect(coordinator.url);
  const hello = welcomed ? null : await worker.signedHello();
  for (let i = 0; i < frames; i++) {
    tally.sent++;
    if (worker.ws.readyState !== WebSocket.OPEN) break;
    const value =
      hello !== null && i === 0 ? hostile(hello, r) : hostile(sample(s(ContributorMessage), r), r, [...jobIds, worker.contributorId]);
    worker.sendRaw(r() < 0.002 ? 'x'.repeat(9 * 1024 * 1024) : frame(value, r));
  }
  if (worker.ws.readyState === WebSocket.OPEN) await worker.sync().catch(() => undefined);
  worker.close();
  await Promise.race([worker.closed, new Promise((resolve) => setTimeout(resolve, 2000))]);
}

async function fuzz(count: number, r: () => number, tally: Tally): Promise<void> {
  while (tally.sent < count) {
    if (r() < 0.01) {
      await socketRound(r, Math.min(100, count - tally.sent), tally);
      continue;
    }
    // A few requests at once, as real callers send them.
    await Promise.all(Array.from({ length: 4 }, () => pick(r, shots)(r, tally)));
  }
}

describe('hostile input from the protocol’s schemas', () => {
  it(
    `answers ${INPUTS} malformed, mutated and hostile inputs without a crash, a 5xx or an untyped refusal; memory stays flat; a real job completes after`,
    async () => {
      const r = rng(SEED);
      const tally: Tally = { sent: 0, byStatus: {}, untyped: [], serverErrors: [] };
      // Warm up (code paths, caches, JIT) before measuring memory.
      await fuzz(Math.ceil(INPUTS * 0.1), r, tally);
      const before = heapAfterGc();
      await fuzz(INPUTS, r, tally);
      const after = heapAfterGc();
      console.log(
        `fuzz: ${tally.sent} inputs (seed ${SEED}); statuses ${JSON.stringify(tally.byStatus)}; heap ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB`,
      );
      expect(tally.serverErrors).toEqual([]);
      expect(tally.untyped).toEqual([]);
      expect(coordinator.errors).toEqual([]);
      // Flat: within 10% (and a few MiB of allocator slack on a small heap).
      expect(after).toBeLessThan(before * 1.1 + 4 * 2 ** 20);

      // Still serving: a real job from a fresh contributor (once the fuzzing sockets are gone).
      const settle = Date.now() + 10_000;
      while (coordinator.coordinator.stats().contributors > 0 && Date.now() < settle)
        await new Promise((resolve) => setTimeout(resolve, 50));
      // A model no fuzz input offers or asks for, so neither a fuzz socket that lingers nor a
      // fuzz job left waiting can come between the fresh contributor and this job.
      const model = 'after-the-fuzz';
      const worker = await coordinator.worker({ slots: 1, models: [model] });
      const res = await coordinator.api('POST', '/v1/jobs', { model, kind: 'chat', billing: TEST_ENVELOPE });
      expect(res.status).toBe(201);
      const { jobId, assignment } = (await res.json()) as { jobId: string; assignment: Assignment | null };
      const events = await coordinator.events(jobId);
      const seen = [];
      // The payload goes to the attempt assigned to the fresh contributor, whichever attempt that is.
      let attempt = assignment?.contributorId === worker.contributorId ? assignment.attempt : 0;
      while (attempt === 0) {
        const e = await events.next(30_000);
        if (e === null) throw new Error(`the job's events ended before it was assigned to the fresh contributor: ${JSON.stringify(seen)}`);
        seen.push(e);
        if (e.type === 'assigned' && e.assignment.contributorId === worker.contributorId) attempt = e.assignment.attempt;
      }
      expect((await coordinator.submit(jobId, attempt)).status).toBe(202);
      const job = await worker.take('job', 10_000);
      expect(job).toMatchObject({ jobId, attempt });
      worker.chunk(job, 0, true);
      for (let e = await events.next(10_000); e !== null; e = await events.next(10_000)) seen.push(e);
      expect(seen.at(-1)).toMatchObject({ type: 'chunk', final: true });
      worker.close();
    },
    TIMEOUT_MS,
  );
});
