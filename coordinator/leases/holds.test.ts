/**
 * Holds (slots reserved ahead of need) in the relay itself: only on contributors that offer
 * their own slots, taken from and given back to those slots, and a job on a hold placed on its
 * contributor or, when the hold lapsed, waiting for attempt 2.
 */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../metrics/metrics.ts';
import { MemoryStore } from '../store/memory.ts';
import { FakeClock, TEST_ENVELOPE } from '../testing.ts';
import { ConnectedContributor } from './contributor.ts';
import { Relay } from './relay.ts';

function relay(clock = new FakeClock()): Relay {
  const gauges = { contributorsConnected: () => 0, jobsQueued: () => 0, jobsRunning: () => 0 };
  return new Relay({
    store: new MemoryStore(),
    clock,
    metrics: new Metrics(gauges),
    hooks: {},
    leaseMs: 60_000,
    loadAllowanceMs: 0,
    maxAttempts: 3,
    maxWaitMs: 120_000,
    maxQueued: 100,
    retainMs: 60_000,
    maxResultBytes: 1_000_000,
    assignAheadMs: 5_000,
  });
}

function contributor(id: string): ConnectedContributor {
  const c = new ConnectedContributor({ id, hpkeKey: 'k'.repeat(43), send: () => {} });
  c.capabilities = {
    v: 1,
    type: 'capabilities',
    adapter: null,
    models: [{ id: 'm', state: 'loaded' }],
    consent: ['chat'],
    engineClass: 't',
  };
  return c;
}

describe('holds in the relay', () => {
  it('holds only slots a contributor offered itself, never a stand-in’s lent one', () => {
    const r = relay();
    const standIn = contributor('stand-in');
    r.join(standIn);
    standIn.openSlots = 1; // as cluster routing lends a remote contributor's slot to one waiting job
    expect(r.hold('key', 'm', 'chat', 4).holds).toEqual([]);
    const own = contributor('own');
    r.join(own);
    r.offer(own, 2);
    const { holds } = r.hold('key', 'm', 'chat', 4);
    expect(holds.map((h) => h.holder.id)).toEqual(['own', 'own']);
    expect(own.openSlots).toBe(0);
    // Offering the same slots again does not free the held ones.
    r.offer(own, 2);
    expect(own.openSlots).toBe(0);
  });

  it('places a job on its hold, or lets it wait for attempt 2 once the hold lapsed', () => {
    const clock = new FakeClock();
    const r = relay(clock);
    const c = contributor('c');
    r.join(c);
    r.offer(c, 2);
    const [first, second] = r.hold('key', 'm', 'chat', 2).holds;
    if (first === undefined || second === undefined) throw new Error('expected two holds');
    const claimed = r.claimHold(first.id, 'key');
    expect(claimed).toMatchObject({ lapsed: false });
    const job = r.createJob('key', 'm', 'chat', { envelope: TEST_ENVELOPE, hold: first });
    expect(job).toMatchObject({ id: first.id, attempt: 1, state: 'queued', contributorId: 'c' });
    expect(r.claimHold(first.id, 'key')).toMatchObject({ status: 409 });
    expect(r.claimHold(second.id, 'another key')).toMatchObject({ status: 404 });

    clock.advance(5_001);
    r.sweep();
    expect(c.openSlots).toBe(1); // the expired hold's slot is back
    const lapsed = r.claimHold(second.id, 'key');
    expect(lapsed).toMatchObject({ lapsed: true });
    const late = r.createJob('key', 'm', 'chat', { envelope: TEST_ENVELOPE, hold: second });
    // Attempt 1 was sealed for the lapsed hold: the job is assigned again as attempt 2 (here, to the free slot).
    expect(late).toMatchObject({ id: second.id, attempt: 2, state: 'queued' });
  });
});
