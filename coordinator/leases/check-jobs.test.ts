import { describe, expect, it } from 'vitest';
import type { CoordinatorMessage, JobEvent } from '../../protocol/wire.ts';
import { Job } from '../jobs/job.ts';
import { Metrics } from '../metrics/metrics.ts';
import { MemoryStore } from '../store/memory.ts';
import { FakeClock } from '../testing.ts';
import { ConnectedContributor } from './contributor.ts';
import { type JobDone, Relay, type RelayChecks } from './relay.ts';

const KEY = 'A'.repeat(43);
const ENVELOPE = { inputTokens: 8, maxOutputTokens: 0 };

function contributor(id: string, engineClass = 'webgpu:x', slots = 1): ConnectedContributor & { sent: CoordinatorMessage[] } {
  const sent: CoordinatorMessage[] = [];
  const c = Object.assign(new ConnectedContributor({ id, hpkeKey: KEY, send: (m) => void sent.push(m) }), { sent });
  c.capabilities = {
    v: 1,
    type: 'capabilities',
    adapter: null,
    models: [{ id: 'm', state: 'cached' }],
    consent: ['embed'],
    engineClass,
  };
  c.openSlots = slots;
  return c;
}

function relay(checks: RelayChecks = {}): { relay: Relay; done: JobDone[]; ended: string[] } {
  const done: JobDone[] = [];
  const ended: string[] = [];
  const r = new Relay({
    store: new MemoryStore(),
    clock: new FakeClock(),
    metrics: new Metrics({ contributorsConnected: () => 0, jobsQueued: () => 0, jobsRunning: () => 0 }),
    hooks: {},
    leaseMs: 60_000,
    loadAllowanceMs: 60_000,
    maxAttempts: 3,
    maxWaitMs: 120_000,
    maxQueued: 100,
    retainMs: 60_000,
    maxResultBytes: 1 << 20,
    onJobDone: (d) => void done.push(d),
    checks: { ...checks, onCheckEnded: (jobId, role) => void ended.push(`${role}:${jobId}`) },
  });
  return { relay: r, done, ended };
}

function assigned(job: Job): string | undefined {
  const event = job.events.find((e): e is Extract<JobEvent, { type: 'assigned' }> => e.type === 'assigned');
  return event?.assignment.contributorId;
}

describe('check jobs in the relay', () => {
  it('gives a canary only to its target, and fails it at once when the target leaves', () => {
    const { relay: r, ended } = relay();
    const a = contributor('a');
    const b = contributor('b');
    r.join(a);
    r.join(b);
    a.openSlots = 0;
    const canary = r.createCheckJob({
      role: 'canary',
      apiKeyId: 'network:checks',
      model: 'm',
      kind: 'embed',
      target: 'a',
      billing: ENVELOPE,
    });
    if (!(canary instanceof Job)) throw new Error('refused');
    // b is free but is not the target.
    expect(canary.state).toBe('waiting');
    r.offer(a, 1);
    expect(assigned(canary)).toBe('a');
    expect(r.submitPayload(canary, 1, { enc: 'ZW5j', ct: 'eA' })).toBeNull();
    r.leave(a, 'closed');
    expect(canary.state).toBe('failed');
    expect(ended).toEqual([`canary:${canary.id}`]);
  });

  it('announces a replica on the primary stream, places it on another contributor of the class, and keeps it out of the quota', () => {
    const { relay: r, done } = relay({});
    const a = contributor('a');
    const other = contributor('other-class', 'webgpu:y');
    const b = contributor('b');
    r.join(a);
    r.join(other);
    const primary = r.createJob('key', 'm', 'embed', { replicas: true, envelope: ENVELOPE });
    if (!(primary instanceof Job)) throw new Error('refused');
    const primaryOn = assigned(primary);
    expect(primaryOn).toBeDefined();
    const exclude = [primaryOn ?? ''];
    expect(r.hasPeer('m', 'embed', 'webgpu:x', exclude)).toBe(primaryOn !== 'a');
    r.join(b);
    const replica = r.createCheckJob({
      role: 'replica',
      apiKeyId: 'key',
      model: 'm',
      kind: 'embed',
      engineClass: 'webgpu:x',
      exclude,
      primaryJobId: primary.id,
      announceOn: primary,
    });
    if (!(replica instanceof Job)) throw new Error('refused');
    expect(primary.events.at(-1)).toEqual({ type: 'replica-assigned', jobId: replica.id, role: 'replica' });
    const replicaOn = assigned(replica);
    expect(replicaOn).toBeDefined();
    expect(replicaOn).not.toBe(primaryOn);
    expect(replicaOn).not.toBe('other-class');
    // The replica belongs to the key (it seals and reads it) but does not use up its in-flight limit.
    expect(r.job(replica.id, 'key')).toBe(replica);
    expect(r.inFlightFor('key')).toBe(1);
    const holder = replicaOn === 'a' ? a : b;
    expect(r.submitPayload(replica, 1, { enc: 'ZW5j', ct: 'eA' })).toBeNull();
    const job = holder.sent.find((m) => m.type === 'job' && m.jobId === replica.id);
    if (job?.type !== 'job') throw new Error('no job frame');
    r.result(holder, {
      v: 1,
      type: 'chunk',
      jobId: replica.id,
      leaseId: job.leaseId,
      seq: 0,
      final: true,
      sealed: { enc: 'ZW5j', ct: 'eA' },
      usage: { promptTokens: 2, completionTokens: 0 },
    });
    expect(done).toMatchObject([{ jobId: replica.id, role: 'replica', primaryJobId: primary.id, engineClass: 'webgpu:x' }]);
    expect(r.inFlightFor('key')).toBe(1);
  });

  it('keeps a contributor verification shuts out off every job', () => {
    const { relay: r } = relay({ eligible: (c) => c.id !== 'a' });
    const a = contributor('a');
    r.join(a);
    const job = r.createJob('key', 'm', 'embed', { envelope: ENVELOPE });
    if (!(job instanceof Job)) throw new Error('refused');
    expect(job.state).toBe('waiting');
    const b = contributor('b');
    r.join(b);
    r.schedule();
    expect(assigned(job)).toBe('b');
  });
});
