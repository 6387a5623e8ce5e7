import { afterEach, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../protocol/wire.ts';
import { type Coordinator, type CoordinatorOptions, createCoordinator } from '../app.ts';
import { MemoryStore } from '../store/memory.ts';
import { EventReader, FakeClock, TEST_ENVELOPE } from '../testing.ts';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

const open: Coordinator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function setup(options: Partial<CoordinatorOptions> = {}, limits = { jobsPerMinute: 100, maxInFlight: 100 }) {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const errors: string[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => void errors.push(message) };
  const coordinator = createCoordinator({ store, clock, logger, ...options });
  open.push(coordinator);
  const { secret } = await coordinator.createApiKey('test', limits);
  const call = (method: string, path: string, body?: unknown, key: string | null = secret): Promise<Response> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key !== null) headers['authorization'] = `Bearer ${key}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
    return Promise.resolve(coordinator.app.request(path, init));
  };
  const create = async (key: string = secret): Promise<string> => {
    const res = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE }, key);
    expect(res.status).toBe(201);
    return ((await res.json()) as { jobId: string }).jobId;
  };
  return { store, clock, coordinator, secret, call, create, errors };
}

describe('requester API without a socket', () => {
  it('refuses requests without a valid API key', async () => {
    const { call } = await setup();
    const none = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE }, null);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await call('GET', '/v1/models', undefined, 'sk_wrong');
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
  });

  it('creates a job that waits with no assignment while no contributor serves it', async () => {
    const { call, store } = await setup();
    const res = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', sizeBytes: 100, billing: TEST_ENVELOPE });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { jobId: string; assignment: unknown };
    expect(body.assignment).toBeNull();
    expect((await store.getJob(body.jobId))?.state).toBe('waiting');
  });

  it('answers invalid bodies with 400 and a summary of what is wrong', async () => {
    const { call } = await setup();
    const bad = await call('POST', '/v1/jobs', { model: 'm', kind: 'dance' });
    expect(bad.status).toBe(400);
    const { error } = (await bad.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('BAD_MESSAGE');
    expect(error.message).toMatch(/kind/);
    expect((await call('POST', '/v1/jobs', '{not json')).status).toBe(400);
  });

  it('limits unfinished jobs per key', async () => {
    const { call, create } = await setup({}, { jobsPerMinute: 100, maxInFlight: 2 });
    await create();
    const second = await create();
    const third = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe('QUOTA');
    expect((await call('DELETE', `/v1/jobs/${second}`)).status).toBe(200);
    await create();
  });

  it('limits jobs per minute per key, on a sliding window', async () => {
    const { call, create, clock } = await setup({ leaseMs: 600_000 }, { jobsPerMinute: 2, maxInFlight: 100 });
    await create();
    clock.advance(30_000);
    await create();
    const refused = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('30');
    clock.advance(30_001);
    await create();
  });

  it('hides one key’s jobs from another key (404)', async () => {
    const { call, create, coordinator } = await setup();
    const mine = await create();
    const { secret: other } = await coordinator.createApiKey('other', { jobsPerMinute: 10, maxInFlight: 10 });
    expect((await call('GET', `/v1/jobs/${mine}/events`, undefined, other)).status).toBe(404);
    expect((await call('PUT', `/v1/jobs/${mine}/payload`, { attempt: 1, sealed: { ct: 'AA' } }, other)).status).toBe(404);
    expect((await call('DELETE', `/v1/jobs/${mine}`, undefined, other)).status).toBe(404);
    expect((await call('DELETE', '/v1/jobs/nosuchjob')).status).toBe(404);
  });

  it('refuses a payload before any assignment (409) and an oversized one (413)', async () => {
    const { call, create } = await setup();
    const id = await create();
    const early = await call('PUT', `/v1/jobs/${id}/payload`, { attempt: 1, sealed: { ct: 'AAAA' } });
    expect(early.status).toBe(409);
    const huge = await call('PUT', `/v1/jobs/${id}/payload`, { attempt: 1, sealed: { ct: 'A'.repeat(MAX_MESSAGE_BYTES) } });
    expect(huge.status).toBe(413);
  });

  it('cancels a waiting job: its event stream ends with one `failed` (ABORTED)', async () => {
    const { call, create, store, coordinator } = await setup();
    const id = await create();
    const events = new EventReader(await call('GET', `/v1/jobs/${id}/events`));
    const res = await call('DELETE', `/v1/jobs/${id}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ jobId: id, state: 'cancelled' });
    expect(await events.rest()).toEqual([{ type: 'failed', error: { code: 'ABORTED', message: 'The requester cancelled the job.' } }]);
    expect((await call('DELETE', `/v1/jobs/${id}`)).status).toBe(200);
    expect(store.jobWrites.filter((r) => r.id === id).map((r) => r.state)).toEqual(['waiting', 'cancelled']);
    expect(coordinator.stats().jobs.cancelled).toBe(1);
  });

  it('answers from the store once a finished job left memory', async () => {
    const { call, create, clock, coordinator } = await setup({ retainMs: 1_000 });
    const id = await create();
    await call('DELETE', `/v1/jobs/${id}`);
    clock.advance(1_001);
    coordinator.sweep();
    const events = await new EventReader(await call('GET', `/v1/jobs/${id}/events`)).rest();
    expect(events).toEqual([{ type: 'failed', error: { code: 'ABORTED', message: 'The requester cancelled the job.' } }]);
    expect((await call('PUT', `/v1/jobs/${id}/payload`, { attempt: 1, sealed: { ct: 'AA' } })).status).toBe(409);
  });

  it('fails a job no contributor takes within the wait limit', async () => {
    const { call, create, clock, coordinator } = await setup({ leaseMs: 1_000 });
    const id = await create();
    clock.advance(2_001);
    coordinator.sweep();
    const events = await new EventReader(await call('GET', `/v1/jobs/${id}/events`)).rest();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'failed', error: { code: 'UNKNOWN_MODEL' } });
    expect((events[0] as { error: { message: string } }).error.message).toContain('"m"');
  });

  it('bounds the queue (503 when full)', async () => {
    const { call, create } = await setup({ maxQueued: 1 });
    await create();
    const full = await call('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE });
    expect(full.status).toBe(503);
  });

  it('serves /healthz and /metrics in the Prometheus text format', async () => {
    const { call, create, coordinator } = await setup();
    await create();
    const health = await call('GET', '/healthz', undefined, null);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, contributors: 0, queued: 1 });
    const res = await coordinator.app.request('/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of [
      'spinneret_contributors_connected',
      'spinneret_jobs_queued',
      'spinneret_jobs_running',
      'spinneret_jobs_total',
      'spinneret_lease_expiries_total',
      'spinneret_protocol_errors_total',
      'spinneret_dispatch_latency_seconds',
    ]) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toMatch(new RegExp(`^# TYPE ${name} (gauge|counter|histogram)$`, 'm'));
    }
    expect(text).toMatch(/^spinneret_jobs_queued 1$/m);
    expect(text).toMatch(/^spinneret_jobs_total\{state="done"\} 0$/m);
    expect(text).toMatch(/^spinneret_dispatch_latency_seconds_bucket\{le="\+Inf"\} 0$/m);
    // Every sample line is `name{labels} value`, and a Prometheus text parser reads the whole.
    for (const line of text
      .trim()
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/);
    }
    const families = parsePrometheusTextFormat(text);
    expect(families.find((f) => f.name === 'spinneret_jobs_queued')?.metrics[0]?.value).toBe('1');
  });

  it('lists no models while no contributor is connected, and 404s unknown routes as JSON', async () => {
    const { call } = await setup();
    expect(await (await call('GET', '/v1/models')).json()).toEqual({ models: [] });
    const missing = await call('GET', '/v1/nothing');
    expect(missing.status).toBe(404);
  });
});
