/**
 * Hostile input to the fleet and enrollment routes of a coordinator on PostgreSQL (not the
 * memory store: NUL bytes, lone surrogates and huge numbers reach a real SQL driver if an edge
 * lets them through). Bodies are built from the routes' own valibot schemas and mutated; path
 * ids are real token and device ids, other owners' ids and hostile segments; the caller is the
 * owner, a device session, a made-up bearer or no one. Nothing answers 5xx or untyped, nothing
 * is logged as an error, and afterwards a real device still enrolls with a real token and the
 * owner still sees and controls it. `FUZZ_INPUTS` scales the count (default 400).
 */
import type * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, createCoordinator } from '../app.ts';
import { ControlRequest, EnrollRequest, IssueTokenRequest } from '../../protocol/page-requests.ts';
import { ownerCall, proveOwner } from '../fleet/testing.ts';
import { SqlStore } from '../store/sql-store.ts';
import { openTestPostgres, uniqueSchema } from '../store/testing.ts';
import { FakeClock, FakeWorker } from '../testing.ts';
import { disposeStore } from '../../testing/verification.ts';
import { testWallet } from '../wallets/test-wallet.ts';
import { frame, hostile, rng, sample } from './fuzz.ts';

const INPUTS = Math.max(100, Math.round(Number(process.env['FUZZ_INPUTS'] ?? 4000) / 10));
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261207);
const OWNER = testWallet('fleet fuzz owner');

let store: SqlStore;
let coordinator: Coordinator;
let url: string;
let clock: FakeClock;
const errors: string[] = [];
let owner = '';
let device = '';
const ids: string[] = [];

beforeAll(async () => {
  store = new SqlStore(await openTestPostgres(uniqueSchema('fuzzfleet')));
  await store.migrate();
  clock = new FakeClock(Date.now());
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => void errors.push(message) };
  coordinator = createCoordinator({ store, clock, logger });
  ({ url } = await coordinator.listen({ port: 0 }));
  owner = await proveOwner(url, OWNER, clock.now());
  device = await proveOwner(url, testWallet('fleet fuzz device'), clock.now(), undefined, 'device');
  const issued = (await (await ownerCall(url, owner, 'POST', '/v1/enrollment-tokens', { label: 'Lab', ttlMs: 3_600_000 })).json()) as {
    id: string;
    secret: string;
  };
  ids.push(issued.id, issued.secret);
  const worker = await FakeWorker.ready(url);
  ids.push(worker.contributorId);
  worker.close();
}, 120_000);

afterAll(async () => {
  await coordinator?.close();
  if (store !== undefined) await disposeStore(store);
}, 60_000);

const s = (schema: unknown) => schema as v.GenericSchema;
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
const segment = (r: () => number): string =>
  r() < 0.5 ? encodeURIComponent(pick(r, ids)) : pick(r, ['%00', '%E0%A4%A', '%ED%A0%80', 'x'.repeat(300), '..%2f', '%01', '😀', 'a%0Ab']);

const ROUTES: Array<[string, (r: () => number) => string, v.GenericSchema | null]> = [
  ['POST', () => '/v1/enrollment-tokens', s(IssueTokenRequest)],
  ['GET', () => '/v1/enrollment-tokens', null],
  ['DELETE', (r) => `/v1/enrollment-tokens/${segment(r)}`, null],
  ['POST', () => '/v1/enroll', s(EnrollRequest)],
  ['GET', () => '/v1/fleet', null],
  ['POST', (r) => `/v1/fleet/${segment(r)}/control`, s(ControlRequest)],
];

describe('hostile input to the fleet and enrollment routes, on PostgreSQL', () => {
  it(`answers ${INPUTS} inputs with typed refusals and no 5xx; enrollment and control still work after`, { timeout: 600_000 }, async () => {
    const r = rng(SEED);
    const byStatus: Record<number, number> = {};
    const bad: string[] = [];
    for (let sent = 0; sent < INPUTS; sent += 4) {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          const [method, path, schema] = pick(r, ROUTES);
          const target = path(r);
          const body = schema === null ? undefined : frame(hostile(sample(schema, r), r, ids), r);
          const who = r();
          const bearer = who < 0.7 ? owner : who < 0.8 ? device : who < 0.9 ? 'x'.repeat(43) : null;
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (bearer !== null) headers['authorization'] = `Bearer ${bearer}`;
          const res = await fetch(url + target, {
            method,
            headers,
            ...(body !== undefined && method !== 'GET' && method !== 'DELETE' && { body }),
            signal: AbortSignal.timeout(30_000),
          }).catch((err: unknown) => (String((err as Error).cause ?? err).match(/ECONNRESET|EPIPE|other side closed/) ? null : err));
          if (res === null) return;
          if (!(res instanceof Response)) return void bad.push(`${method} ${target.slice(0, 80)}: ${JSON.stringify(res)}`);
          byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
          const text = await res.text();
          if (res.status >= 500) bad.push(`${res.status} ${method} ${target.slice(0, 80)}: ${text.slice(0, 200)}`);
          else if (res.status >= 400) {
            const code = (() => {
              try {
                return (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
              } catch {
                return undefined;
              }
            })();
            if (typeof code !== 'string') bad.push(`untyped ${res.status} ${method} ${target.slice(0, 80)}: ${text.slice(0, 120)}`);
          }
        }),
      );
    }
    console.log(`fleet fuzz on PostgreSQL: ${INPUTS} inputs (seed ${SEED}); statuses ${JSON.stringify(byStatus)}`);
    expect(bad).toEqual([]);
    expect(errors).toEqual([]);
    expect(Object.keys(byStatus).some((status) => Number(status) < 300)).toBe(true); // some inputs were valid and served

    // Still working: a real device enrolls with a real token, and its owner sees and pauses it.
    const issued = (await (await ownerCall(url, owner, 'POST', '/v1/enrollment-tokens', { label: 'After', ttlMs: 3_600_000 })).json()) as {
      secret: string;
    };
    const worker = await FakeWorker.connect(url);
    const identityKey = Buffer.from(await crypto.subtle.exportKey('raw', worker.identity.publicKey)).toString('base64url');
    const enrolled = await fetch(`${url}/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: issued.secret, identityKey, signature: await worker.signEnrollment(issued.secret) }),
    });
    expect(enrolled.status).toBe(200);
    const { session } = (await enrolled.json()) as { session: string };
    worker.send({ ...(await worker.signedHello()), session });
    const { contributorId } = await worker.take('welcome');
    const fleet = (await (await ownerCall(url, owner, 'GET', '/v1/fleet')).json()) as { devices: Array<{ contributorId: string }> };
    expect(fleet.devices.map((d) => d.contributorId)).toContain(contributorId);
    expect((await ownerCall(url, owner, 'POST', `/v1/fleet/${contributorId}/control`, { action: 'pause' })).status).toBe(200);
    worker.close();
  });
});
