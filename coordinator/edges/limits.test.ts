import { type IncomingMessage, request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { coordinatorsClosedAfterEach } from '../../testing/coordinators.ts';
import { FakeWorker } from '../testing.ts';
import { LimitConfigError, resolveLimits } from './limits.ts';

const start = coordinatorsClosedAfterEach();

const deviceKey = 'A'.repeat(43);

describe('limits, each answered with a typed refusal', () => {
  it('reads limits from the environment and refuses a bad value with a clear error', () => {
    expect(resolveLimits({}, { SPINNERET_SUBSCRIBERS_PER_JOB: '3' }).subscribersPerJob).toBe(3);
    expect(resolveLimits({ subscribersPerJob: 5 }, { SPINNERET_SUBSCRIBERS_PER_JOB: '3' }).subscribersPerJob).toBe(5);
    expect(() => resolveLimits({}, { SPINNERET_MAX_BODY_BYTES: '-1' })).toThrow(LimitConfigError);
  });

  it('limits bodies on every route, owner and wallet routes included (413 before anything is read)', async () => {
    const c = await start({ limits: { maxBodyBytes: 1024 } });
    const big = JSON.stringify({ label: 'x'.repeat(4096), ttlMs: 60_000 });
    for (const path of ['/v1/enrollment-tokens', '/v1/fleet/abc/control', '/v1/wallet/payload', '/v1/operator/budget', '/v1/jobs']) {
      const res = await fetch(c.url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
        body: big,
      });
      expect(res.status, path).toBe(413);
      expect(await res.json()).toMatchObject({ error: { code: 'BAD_MESSAGE' } });
    }
  });

  it('holds at most N anonymous ton_proof payloads per IP address (429)', async () => {
    const c = await start({ limits: { proofPayloadsPerIp: 5 } });
    const ask = () =>
      fetch(`${c.url}/v1/wallet/payload`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ deviceKey }),
      });
    for (let i = 0; i < 5; i++) expect((await ask()).status).toBe(200);
    const refused = await ask();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: 'QUOTA' } });
  });

  it('closes contributor sockets beyond the per-IP limit with 1013 and a QUOTA error', async () => {
    const c = await start({ limits: { connectionsPerIp: 2 } });
    const a = await FakeWorker.connect(c.url);
    const b = await FakeWorker.connect(c.url);
    const third = await FakeWorker.connect(c.url);
    expect((await third.take('error')).error.code).toBe('QUOTA');
    expect((await third.closed).code).toBe(1013);
    a.close();
    await a.closed;
    await new Promise((r) => setTimeout(r, 50));
    const again = await FakeWorker.connect(c.url);
    await again.hello();
    for (const w of [b, again]) w.close();
  });

  it('refuses empty chunks and chunks beyond the per-lease limits, failing the job', async () => {
    const c = await start({ limits: { emptyChunksPerLease: 2, chunksPerLease: 100 } });
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    for (let seq = 0; seq < 2; seq++) {
      worker.send({ v: 1, type: 'chunk', jobId, leaseId: job.leaseId, seq, final: false, sealed: { ct: '' } });
      expect((await worker.take('ack')).status).toBe('accepted');
    }
    worker.send({ v: 1, type: 'chunk', jobId, leaseId: job.leaseId, seq: 2, final: false, sealed: { ct: '' } });
    expect((await worker.take('error')).error.code).toBe('QUOTA');
    const events = await (await c.events(jobId)).rest();
    expect(events.at(-1)).toMatchObject({ type: 'failed', error: { code: 'QUOTA' } });

    const many = await start({ limits: { chunksPerLease: 3 } });
    const w2 = await many.worker({ slots: 1 });
    const second = await many.createJob();
    await many.submit(second.jobId, 1);
    const j2 = await w2.take('job');
    for (let seq = 0; seq < 3; seq++) {
      w2.chunk(j2, seq);
      await w2.take('ack');
    }
    w2.chunk(j2, 3);
    expect((await w2.take('error')).error.code).toBe('QUOTA');
  });

  it('allows at most N event streams per job and per key (429)', async () => {
    const c = await start({ limits: { subscribersPerJob: 2, subscribersPerKey: 3 } });
    const { jobId } = await c.createJob();
    const open = [await c.api('GET', `/v1/jobs/${jobId}/events`), await c.api('GET', `/v1/jobs/${jobId}/events`)];
    expect(open.map((r) => r.status)).toEqual([200, 200]);
    const third = await c.api('GET', `/v1/jobs/${jobId}/events`);
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ error: { code: 'QUOTA' } });
    const other = await c.createJob();
    expect((await c.api('GET', `/v1/jobs/${other.jobId}/events`)).status).toBe(200);
    expect((await c.api('GET', `/v1/jobs/${other.jobId}/events`)).status).toBe(429);
    // A stream that ends frees its place.
    await open[0]!.body!.cancel();
    await new Promise((r) => setTimeout(r, 50));
    expect((await c.api('GET', `/v1/jobs/${jobId}/events`)).status).toBe(200);
  });

  it('drops an event-stream reader that does not read, and a contributor socket that does not read', async () => {
    const c = await start({
      limits: { eventStreamBufferBytes: 256 * 1024, sendBufferBytes: 256 * 1024 },
      maxResultBytes: 256 * 1024 * 1024,
    });
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    // A reader that never reads.
    const url = new URL(`${c.url}/v1/jobs/${jobId}/events`);
    const stalled = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { headers: { authorization: c.auth } }, resolve);
      req.on('error', reject);
      req.end();
    });
    stalled.pause();
    const ended = new Promise<string>((resolve) => {
      stalled.on('close', () => resolve('closed'));
      stalled.on('error', () => resolve('error'));
    });
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    const ct = 'A'.repeat(1024 * 1024);
    for (let seq = 0; seq < 24; seq++) {
      worker.send({ v: 1, type: 'chunk', jobId, leaseId: job.leaseId, seq, final: false, sealed: { ct } });
      await worker.take('ack');
    }
    stalled.resume();
    stalled.on('data', () => {});
    expect(await ended).toMatch(/closed|error/);
    expect(stalled.complete).toBe(false);

    // A contributor that stops reading its socket while jobs are sent to it.
    const slow = await c.worker({ slots: 64, models: ['m'] });
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    worker.close();
    const big = 'B'.repeat(3 * 1024 * 1024);
    for (let i = 0; i < 12; i++) {
      const created = await c.createJob();
      await c.api('PUT', `/v1/jobs/${created.jobId}/payload`, { attempt: 1, sealed: { enc: 'ZW5j', ct: big } });
    }
    const until = Date.now() + 5000;
    while (c.coordinator.stats().contributors > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(c.coordinator.stats().contributors).toBe(0);
  });
});
