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

/**
 * A device: `features` is the adapter fact its engine class is derived from (a stand-in for
 * the catalog's rule, protocol/engine-class.ts); `claimed` is the engine class string it
 * sends, which placement must ignore.
 */
function contributor(
  id: string,
  features: string[] = [],
  slots = 1,
  wallet: string | null = null,
  claimed = 'webgpu:x',
): ConnectedContributor & { sent: CoordinatorMessage[] } {
  const sent: CoordinatorMessage[] = [];
  const c = Object.assign(new ConnectedContributor({ id, hpkeKey: KEY, wallet, send: (m) => void sent.push(m) }), { sent });
  c.capabilities = {
    v: 1,
    type: 'capabilities',
    adapter: { vendor: 'v', architecture: 'a', isFallbackAdapter: false, features },
    models: [{ id: 'm', state: 'cached' }],
    consent: ['embed'],
    engineClass: claimed,
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
    engineClass: (c, model) => `${model}:${c.capabilities?.adapter?.features.includes('shader-f16') === true ? 'f16' : 'f32'}`,
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
    const other = contributor('other-class', ['shader-f16']);
    const b = contributor('b');
    r.join(a);
    r.join(other);
    const primary = r.createJob('key', 'm', 'embed', { replicas: true, envelope: ENVELOPE });
    if (!(primary instanceof Job)) throw new Error('refused');
    const primaryOn = assigned(primary);
    expect(primaryOn).toBeDefined();
    const exclude = [primaryOn ?? ''];
    expect(r.hasPeer('m', 'embed', 'm:f32', exclude)).toBe(primaryOn !== 'a');
    r.join(b);
    const replica = r.createCheckJob({
      role: 'replica',
      apiKeyId: 'key',
      model: 'm',
      kind: 'embed',
      engineClass: 'm:f32',
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
    expect(done).toMatchObject([{ jobId: replica.id, role: 'replica', primaryJobId: primary.id, engineClass: 'm:f32' }]);
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
  it('derives the engine class from the model and device facts: a private class string neither hides a job from replicas nor picks its checker', () => {
    const { relay: r, done } = relay({});
    const cheat = contributor('cheat', [], 1, 'wallet-a', 'my-private-class');
    const honest = contributor('honest', [], 1, 'wallet-b', 'webgpu:x');
    r.join(cheat);
    const primary = r.createJob('key', 'm', 'embed', { envelope: ENVELOPE });
    if (!(primary instanceof Job)) throw new Error('refused');
    expect(assigned(primary)).toBe('cheat');
    // The class is fixed at assignment from the manifest's facts, not from the string the device sent.
    expect(primary.engineClass).toBe('m:f32');
    r.join(honest);
    expect(r.hasPeer('m', 'embed', 'm:f32', ['cheat'])).toBe(true);
    expect(r.hasPeer('m', 'embed', 'my-private-class', ['cheat'])).toBe(false);
    // Switching its claimed class just before the final chunk changes nothing.
    expect(r.submitPayload(primary, 1, { enc: 'ZW5j', ct: 'eA' })).toBeNull();
    const frame = cheat.sent.find((m) => m.type === 'job' && m.jobId === primary.id);
    if (frame?.type !== 'job') throw new Error('no job frame');
    if (cheat.capabilities !== null) cheat.capabilities = { ...cheat.capabilities, engineClass: 'flipped-at-the-end' };
    r.result(cheat, {
      v: 1,
      type: 'chunk',
      jobId: primary.id,
      leaseId: frame.leaseId,
      seq: 0,
      final: true,
      sealed: { enc: 'ZW5j', ct: 'eA' },
      usage: { promptTokens: 2, completionTokens: 0 },
    });
    expect(done).toMatchObject([{ jobId: primary.id, role: 'job', engineClass: 'm:f32' }]);
  });

  it('never places a replica on another device of the same wallet', () => {
    const { relay: r } = relay({});
    const first = contributor('first', [], 1, 'wallet-a');
    const twin = contributor('twin', [], 1, 'wallet-a');
    r.join(first);
    r.join(twin);
    expect(r.hasPeer('m', 'embed', 'm:f32', ['first'], ['wallet-a'])).toBe(false);
    const replica = r.createCheckJob({
      role: 'replica',
      apiKeyId: 'key',
      model: 'm',
      kind: 'embed',
      engineClass: 'm:f32',
      exclude: ['first'],
      excludeWallets: ['wallet-a'],
      billing: ENVELOPE,
    });
    if (!(replica instanceof Job)) throw new Error('refused');
    expect(replica.state).toBe('waiting');
    const stranger = contributor('stranger', [], 1, 'wallet-b');
    r.join(stranger);
    r.schedule();
    expect(assigned(replica)).toBe('stranger');
  });
  it('charges an INVALID_INPUT fail to the device record, and a device with a worse record is placed after', () => {
    const faults: string[] = [];
    const record = new Map<string, number>([
      ['griefer', 0.5],
      ['steady', 0.5],
    ]);
    const { relay: r } = relay({
      onFault: (id, model, fault) => {
        faults.push(`${id}:${model}:${fault}`);
        record.set(id, (record.get(id) ?? 0.5) - 0.1);
      },
      demote: (c) => (record.get(c.id) ?? 0.5) < 0.5,
    });
    const griefer = contributor('griefer');
    r.join(griefer);
    const job = r.createJob('key', 'm', 'embed', { envelope: ENVELOPE });
    if (!(job instanceof Job)) throw new Error('refused');
    expect(r.submitPayload(job, 1, { enc: 'ZW5j', ct: 'eA' })).toBeNull();
    const frame = griefer.sent.find((m) => m.type === 'job');
    if (frame?.type !== 'job') throw new Error('no job frame');
    r.result(griefer, { v: 1, type: 'fail', jobId: job.id, leaseId: frame.leaseId, error: { code: 'INVALID_INPUT', message: 'no' } });
    expect(job.state).toBe('failed');
    expect(faults).toEqual([`griefer:m:invalid-input`]);
    // Next time both are free, the steady device gets the job (the griefer waited longer, but its record is worse).
    const steady = contributor('steady');
    steady.lastAssignedAt = Number.MAX_SAFE_INTEGER;
    r.join(steady);
    r.offer(griefer, 1);
    const next = r.createJob('key', 'm', 'embed', { envelope: ENVELOPE });
    if (!(next instanceof Job)) throw new Error('refused');
    expect(assigned(next)).toBe('steady');
  });
});
