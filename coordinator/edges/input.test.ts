import { describe, expect, it } from 'vitest';
import { coordinatorsClosedAfterEach } from '../../testing/coordinators.ts';

const start = coordinatorsClosedAfterEach();

const HOSTILE = ['a\u0000b', 'tab\u0007bell', 'lone \ud800 surrogate', 'end \udfff', 'x'.repeat(10_000)];

describe('input the store cannot take is refused at the edge', () => {
  it('refuses a job whose model holds NUL, control characters, lone surrogates or is over-long, with a typed 400', async () => {
    const c = await start();
    for (const model of HOSTILE) {
      const res = await c.api('POST', '/v1/jobs', { model, kind: 'chat', billing: { inputTokens: 1, maxOutputTokens: 1 } });
      expect(res.status, JSON.stringify(model.slice(0, 20))).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'BAD_MESSAGE' } });
    }
    expect(c.store.jobWrites).toHaveLength(0);
  });

  it('refuses path ids and query strings with NUL, control characters, bad UTF-8 or over-long', async () => {
    const c = await start();
    const paths = [
      '/v1/jobs/a%00b/events',
      '/v1/jobs/%01/events',
      '/v1/jobs/%ED%A0%80/events',
      '/v1/jobs/%E0%A4%A/events',
      `/v1/jobs/${'x'.repeat(300)}/events`,
      '/v1/contributors/a%00b',
      '/v1/contributors/a%00b/receipts',
      '/v1/contributors/a%00b/verification',
      '/v1/earnings/a%00b',
      '/v1/models/a%00b',
      '/v1/fleet/a%00b/control',
      '/v1/enrollment-tokens/a%00b',
      '/v1/contributors/x/receipts?limit=%00',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'POST', 'DELETE']) {
        const res = await c.api(method, path, method === 'POST' ? {} : undefined);
        expect(res.status, `${method} ${path}`).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: 'BAD_MESSAGE' } });
      }
    }
  });

  it('refuses a JSON body with a hostile string anywhere in it, before any route reads it', async () => {
    const c = await start();
    const { jobId } = await c.createJob();
    const res = await c.api('PUT', `/v1/jobs/${jobId}/payload`, {
      attempt: 1,
      sealed: { ct: 'abc' },
      extra: { deep: ['ok', 'bad\u0000'] },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'BAD_MESSAGE', message: expect.stringMatching(/NUL|control|surrogate/) } });
  });

  it("refuses a contributor's fail message with NUL in its text, and the job stays the contributor's to finish", async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    worker.send({ v: 1, type: 'fail', jobId, leaseId: job.leaseId, error: { code: 'ENGINE', message: 'broke\u0000here' } });
    const refused = await worker.take('error');
    expect(refused.error.code).toBe('BAD_MESSAGE');
    expect(c.store.jobWrites.some((w) => (w.error ?? '').includes('\u0000'))).toBe(false);
    // A well-formed fail still goes through.
    worker.send({ v: 1, type: 'fail', jobId, leaseId: job.leaseId, error: { code: 'ENGINE', message: 'broke' } });
    await worker.take('ack');
  });
});
