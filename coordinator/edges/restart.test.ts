import { describe, expect, it } from 'vitest';
import { createCoordinator, publicDomains } from '../app.ts';
import { MemoryStore } from '../store/memory.ts';
import type { JobRecord } from '../store/types.ts';
import { EventReader, FakeClock } from '../testing.ts';

const record = (id: string, state: JobRecord['state'], apiKeyId: string): JobRecord => ({
  id,
  apiKeyId,
  model: 'm',
  kind: 'chat',
  state,
  attempt: 1,
  contributorId: state === 'waiting' ? null : 'c1',
  createdAt: 1,
  updatedAt: 1,
  payloadBytes: 10,
  resultBytes: 0,
  promptTokens: 0,
  completionTokens: 0,
  error: null,
});

describe('a coordinator restart', () => {
  it('recovers the jobs a previous run left unfinished: each fails cleanly with RESTARTED, and its requester is told so', async () => {
    const store = new MemoryStore();
    const logger = { info: () => {}, warn: () => {}, error: () => {} };
    const before = createCoordinator({ store, clock: new FakeClock(), logger });
    const { secret, id: keyId } = await before.createApiKey('k', { jobsPerMinute: 100, maxInFlight: 100 });
    for (const [id, state] of [
      ['w1', 'waiting'],
      ['q1', 'queued'],
      ['l1', 'leased'],
      ['d1', 'done'],
    ] as const)
      store.putJob(record(id, state, keyId));
    await before.close();

    const after = createCoordinator({ store, clock: new FakeClock(), logger });
    const server = await after.listen({ port: 0 });
    try {
      expect(await store.unfinishedJobs()).toEqual([]);
      for (const id of ['w1', 'q1', 'l1'])
        expect(await store.getJob(id)).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });
      expect(await store.getJob('d1')).toMatchObject({ state: 'done' });
      // Used to be a 409 "from before a restart"; now the requester reads why it ended and can run it again.
      const res = await fetch(`${server.url}/v1/jobs/l1/events`, { headers: { authorization: `Bearer ${secret}` } });
      expect(res.status).toBe(200);
      expect(await new EventReader(res).rest()).toEqual([
        { type: 'failed', error: { code: 'RESTARTED', message: expect.stringMatching(/restarted/) } },
      ]);
    } finally {
      await after.close();
    }
  });
});

describe('the ton_proof domain list', () => {
  it('comes from the deployment’s public URL, else loopback only', () => {
    expect(publicDomains('https://contribute.example.org')).toEqual(['contribute.example.org']);
    expect(publicDomains('https://contribute.example.org:8443/app')).toEqual(['contribute.example.org:8443']);
    expect(publicDomains(undefined)).toEqual(['127.0.0.1', 'localhost']);
    expect(() => publicDomains('not a url')).toThrow(/SPINNERET_PUBLIC_URL/);
  });
});
