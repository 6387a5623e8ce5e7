/**
 * The authorization matrix: each role against each route, every cross-role or cross-party call
 * refused. Roles: anonymous, requester A (owns the job), requester B (another party), the
 * operator, and contributors (their socket; a result for another contributor's lease).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../testing.ts';

const OPERATOR = 'operator-token-for-the-matrix-000';
let c: Awaited<ReturnType<typeof startCoordinator>>;
let bKey = '';
let jobA = '';
let keyIdA = '';

beforeAll(async () => {
  c = await startCoordinator({ operatorToken: OPERATOR });
  bKey = (await c.coordinator.createApiKey('B', { jobsPerMinute: 100, maxInFlight: 10 })).secret;
  jobA = (await c.createJob()).jobId;
  const res = await fetch(`${c.url}/v1/operator/keys`, { headers: { authorization: `Bearer ${OPERATOR}` } });
  keyIdA = ((await res.json()) as { keys: Array<{ id: string; label: string }> }).keys.find((k) => k.label === 'test')!.id;
});
afterAll(() => c.close());

type Role = 'anonymous' | 'requester' | 'other requester' | 'operator';
const bearer = (role: Role): Record<string, string> =>
  role === 'anonymous' ? {} : { authorization: role === 'requester' ? c.auth : `Bearer ${role === 'operator' ? OPERATOR : bKey}` };

const create = { model: 'm', kind: 'chat', billing: { inputTokens: 1, maxOutputTokens: 1 } };

// [method, path, body, expected status per role]; the job and key ids are requester A's. The
// job has no contributor yet, so even its owner's payload is a typed 409 (not 401 or 404).
const matrix: Array<[string, () => string, unknown, Record<Role, number>]> = [
  ['POST', () => '/v1/jobs', create, { anonymous: 401, requester: 201, 'other requester': 201, operator: 401 }],
  ['GET', () => '/v1/models', undefined, { anonymous: 401, requester: 200, 'other requester': 200, operator: 401 }],
  [
    'PUT',
    () => `/v1/jobs/${jobA}/payload`,
    { attempt: 1, sealed: { ct: 'abc' } },
    { anonymous: 401, requester: 409, 'other requester': 404, operator: 401 },
  ],
  ['GET', () => `/v1/jobs/${jobA}/events`, undefined, { anonymous: 401, requester: 200, 'other requester': 404, operator: 401 }],
  ['GET', () => '/v1/operator/keys', undefined, { anonymous: 401, requester: 401, 'other requester': 401, operator: 200 }],
  ['DELETE', () => `/v1/jobs/${jobA}`, undefined, { anonymous: 401, requester: 200, 'other requester': 404, operator: 401 }],
  ['DELETE', () => `/v1/operator/keys/${keyIdA}`, undefined, { anonymous: 401, requester: 401, 'other requester': 401, operator: 200 }],
];

describe('the authorization matrix', () => {
  it('lets each role do what it owns and refuses every cross-role or cross-party call', async () => {
    const seen: string[] = [];
    for (const [method, path, body, expected] of matrix) {
      // The owner last: its calls change state (a payload, a cancel, a revoke).
      for (const role of ['anonymous', 'other requester', 'operator', 'requester'] as Role[]) {
        const res = await fetch(c.url + path(), {
          method,
          headers: { ...bearer(role), 'content-type': 'application/json' },
          ...(body !== undefined && { body: JSON.stringify(body) }),
        });
        if (res.body !== null && path().endsWith('/events')) await res.body.cancel();
        else await res.text();
        seen.push(`${role} ${method} ${path()} → ${res.status}`);
        expect(res.status, `${role} ${method} ${path()}`).toBe(expected[role]);
      }
    }
    expect(seen).toHaveLength(matrix.length * 4);
  });

  it('refuses a contributor’s result for another contributor’s lease', async () => {
    const c = await startCoordinator();
    const owner = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await owner.take('job');
    const intruder = await c.worker({ slots: 0 });
    intruder.chunk(job, 0, true);
    expect((await intruder.take('error')).error.code).toMatch(/UNAUTHORIZED|NOT_FOUND|CONFLICT/);
    intruder.send({ v: 1, type: 'fail', jobId, leaseId: job.leaseId, error: { code: 'ENGINE', message: 'x' } });
    expect((await intruder.take('error')).error.code).toMatch(/UNAUTHORIZED|NOT_FOUND|CONFLICT/);
    // The owner's result still counts.
    owner.chunk(job, 0, true);
    expect((await owner.take('ack')).status).toBe('accepted');
    await c.close();
  });
});
