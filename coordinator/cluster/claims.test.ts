/**
 * How an owner replica claims slots of other replicas' contributors (coordinator/cluster/borrowing.ts),
 * on a real relay and a recording bus (the bus itself is exercised on NATS in routing.test.ts):
 * every waiting job's claim goes out at once instead of in serialized batches, never twice for one
 * job, only to the peers whose heartbeat says they serve the job's model (every peer when none
 * says so); a granted slot is placed at once, kept 250 ms when no job needs it, and each job that
 * starts on a held slot has the next one claimed ahead.
 */
import { describe, expect, it } from 'vitest';
import type { Job } from '../jobs/job.ts';
import type { CoordinatorMessage } from '../../protocol/wire.ts';
import { ConnectedContributor } from '../leases/contributor.ts';
import { Relay } from '../leases/relay.ts';
import { Metrics } from '../metrics/metrics.ts';
import { MemoryStore } from '../store/memory.ts';
import { FakeClock, TEST_ENVELOPE } from '../testing.ts';
import { quiet } from '../../testing/cluster.ts';
import { Borrowing } from './borrowing.ts';
import { subjects, type Bus } from './bus.ts';
import { Peers } from './peers.ts';
import type { RoutingContext, RoutingCounts } from './routing-context.ts';

const capabilities = (model: string) => ({
  v: 1 as const,
  type: 'capabilities' as const,
  adapter: null,
  models: [{ id: model, state: 'loaded' as const }],
  consent: ['chat' as const],
  engineClass: 't',
});

/** Records what is published and requested; a request resolves when the test answers it. */
class RecordingBus implements Bus {
  readonly requests: { subject: string; body: { jobId: string }; answer: (body: unknown) => void; fail: (err: Error) => void }[] = [];
  readonly published: { subject: string; body: unknown }[] = [];
  readonly dropped = 0;
  readonly maxPayload = 1024 * 1024;
  publish(subject: string, body: unknown): boolean {
    this.published.push({ subject, body });
    return true;
  }
  request(subject: string, body: unknown): Promise<unknown> {
    return new Promise((answer, fail) => this.requests.push({ subject, body: body as { jobId: string }, answer, fail }));
  }
  subscribe(): void {}
  async close(): Promise<void> {}
}

function setUp() {
  const clock = new FakeClock();
  const gauges = { contributorsConnected: () => 0, jobsQueued: () => 0, jobsRunning: () => 0 };
  const relay = new Relay({
    store: new MemoryStore(),
    clock,
    metrics: new Metrics(gauges),
    hooks: {},
    leaseMs: 60_000,
    loadAllowanceMs: 0,
    maxAttempts: 3,
    maxWaitMs: 120_000,
    maxQueued: 1_000,
    retainMs: 60_000,
    maxResultBytes: 1_000_000,
    assignAheadMs: 5_000,
  });
  relay.remotePeer = () => true;
  const bus = new RecordingBus();
  const counts: RoutingCounts = {
    claimsSent: 0,
    claimsGranted: 0,
    slotsLent: 0,
    slotsReturned: 0,
    remoteResults: 0,
    peersLost: 0,
    slotsExpired: 0,
    aliveRefused: 0,
  };
  const context: RoutingContext = {
    options: {
      replicaId: 'a',
      bus,
      prefix: 'p',
      clock,
      logger: quiet,
      heartbeatMs: 500,
      deadAfterMs: 3_000,
      claimEveryMs: 20,
      claimTimeoutMs: 5_000,
      lendForMs: 10_000,
    },
    subjects: subjects('p'),
    counts,
    relay: () => relay,
    find: () => undefined,
    isPeer: () => true,
  };
  const jobs = (n: number, model = 'm'): Job[] =>
    Array.from({ length: n }, () => {
      const job = relay.createJob('key', model, 'chat', { envelope: TEST_ENVELOPE });
      if (!('state' in job)) throw new Error(`refused: ${JSON.stringify(job)}`);
      return job;
    });
  return { clock, relay, bus, counts, borrowing: new Borrowing(context), jobs };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('claiming slots of other replicas', () => {
  it('sends every waiting job’s claim at once, one per job, and places a granted slot at once', async () => {
    const { clock, relay, bus, counts, borrowing, jobs } = setUp();
    const waiting = jobs(100);
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(100); // not a batch of 32 waiting for the previous batch's answers
    expect(new Set(bus.requests.map((r) => r.body.jobId)).size).toBe(100);
    expect(bus.requests.every((r) => r.subject === 'p.r.b.claim')).toBe(true);

    // Ticks while the claims are out ask for nothing more, even after the retry delay.
    clock.advance(1_000);
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(100);

    // One grant (answering the last job's claim): the slot is placed on the oldest waiting job at once.
    const view = { id: 'remote-1', hpkeKey: 'k'.repeat(43), wallet: null, capabilities: capabilities('m') };
    bus.requests[99]?.answer({ contributor: view });
    for (const r of bus.requests.slice(0, 99)) r.answer({ contributor: null });
    await settle();
    expect(counts.claimsGranted).toBe(1);
    expect(waiting[0]).toMatchObject({ state: 'queued', contributorId: 'remote-1' });
    expect([...relay.waitingJobs()]).toHaveLength(99);

    // Refused jobs ask again only after the retry delay.
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(100);
    clock.advance(250);
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(199);
  });

  it('keeps at most 256 claims out', () => {
    const { bus, borrowing, jobs } = setUp();
    jobs(300);
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(256);
  });

  it('asks only the peers whose heartbeat says they serve the model, and every peer when none says so', async () => {
    const { bus, borrowing, jobs } = setUp();
    const peers = new Peers('a', () => undefined, { heartbeatMs: 500, refused: () => undefined });
    peers.heard('b', 'boot-b', ['m\nchat\nt'], 0);
    peers.heard('c', 'boot-c', ['other\nchat\nt', 'm\nembed\nt'], 0);
    jobs(3, 'm');
    jobs(2, 'unheard-of');
    const peersFor = (model: string, kind: string) => peers.forClaim(model, kind);
    expect(peersFor('m', 'chat')).toEqual(['b']);
    expect(peersFor('unheard-of', 'chat')).toEqual(['b', 'c']);

    borrowing.claim(peersFor);
    const subjectsOf = (model: string) =>
      bus.requests.filter((r) => r.subject.endsWith('.claim') && jobOf(r) === model).map((r) => r.subject);
    const models = new Map<string, string>();
    const jobOf = (r: (typeof bus.requests)[number]) => models.get(r.body.jobId);
    for (const r of bus.requests) models.set(r.body.jobId, (r.body as unknown as { model: string }).model);
    expect(subjectsOf('m')).toEqual(['p.r.b.claim', 'p.r.b.claim', 'p.r.b.claim']);
    // The unknown model's two claims start at different peers; a refusal moves on to the other.
    expect(new Set(subjectsOf('unheard-of'))).toEqual(new Set(['p.r.b.claim', 'p.r.c.claim']));
    const first = bus.requests.find((r) => jobOf(r) === 'unheard-of');
    first?.answer({ contributor: null });
    await settle();
    expect(bus.requests).toHaveLength(6);
    expect(bus.requests[5]?.body.jobId).toBe(first?.body.jobId);
    expect(bus.requests[5]?.subject).not.toBe(first?.subject);
  });

  it('gives back a granted slot no job used within 250 ms', async () => {
    const { clock, relay, bus, borrowing, jobs } = setUp();
    const [job] = jobs(1);
    borrowing.claim(() => ['b']);
    // A local contributor takes the job while the claim is out.
    const local = new ConnectedContributor({ id: 'local', hpkeKey: 'k'.repeat(43), send: () => {} });
    local.capabilities = capabilities('m');
    relay.join(local);
    relay.offer(local, 1);
    expect(job).toMatchObject({ state: 'queued', contributorId: 'local' });
    bus.requests[0]?.answer({ contributor: { id: 'remote-1', hpkeKey: 'k'.repeat(43), wallet: null, capabilities: capabilities('m') } });
    await settle();
    const release = { subject: 'p.r.b.release', body: { owner: 'a', contributorId: 'remote-1', slots: 1 } };
    clock.advance(249);
    borrowing.claim(() => ['b']);
    expect(bus.published).not.toContainEqual(release);
    expect(borrowing.holding).toBe(1);
    clock.advance(1);
    borrowing.claim(() => ['b']);
    expect(bus.published).toContainEqual(release);
    expect(borrowing.holding).toBe(0);
  });

  it('claims one slot ahead for each job that started on a held slot, and the next job takes it without a claim', async () => {
    const { clock, relay, bus, borrowing, jobs } = setUp();
    const view = { id: 'remote-1', hpkeKey: 'k'.repeat(43), wallet: null, capabilities: capabilities('m') };
    const [first] = jobs(1);
    borrowing.claim(() => ['b']);
    bus.requests[0]?.answer({ contributor: view });
    await settle();
    expect(first).toMatchObject({ state: 'queued', contributorId: 'remote-1' });
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(1); // assigned, but nothing has started on the slot yet

    // Its payload goes down (as the relay sends it once the requester sealed it): one slot is claimed ahead.
    const job = { v: 1, type: 'job', jobId: first?.id, leaseId: first?.leaseId, attempt: 1 } as unknown as CoordinatorMessage;
    relay.contributors.get('remote-1')?.send(job);
    expect(bus.published.filter((m) => m.subject === 'p.r.b.down')).toHaveLength(1);
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(2);
    const ahead = bus.requests[1];
    expect(ahead?.body).toMatchObject({ owner: 'a', model: 'm', kind: 'chat', exclude: [] });
    expect(relay.jobById(ahead?.body.jobId ?? '')).toBeUndefined(); // no job of that id: a slot for the next one
    ahead?.answer({ contributor: view });
    await settle();
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(2); // one started, one claimed ahead

    // Kept (under 250 ms), the next job is placed on it at once, with no claim of its own.
    clock.advance(200);
    borrowing.claim(() => ['b']);
    expect(bus.published.some((m) => m.subject === 'p.r.b.release')).toBe(false);
    const [next] = jobs(1);
    expect(next).toMatchObject({ state: 'queued', contributorId: 'remote-1' });
    borrowing.claim(() => ['b']);
    expect(bus.requests).toHaveLength(2);
  });

  it('gives back at once the held slots of a replica that did not answer a claim', async () => {
    const { relay, bus, borrowing, jobs } = setUp();
    const [job] = jobs(1);
    borrowing.claim(() => ['b']);
    const local = new ConnectedContributor({ id: 'local', hpkeKey: 'k'.repeat(43), send: () => {} });
    local.capabilities = capabilities('m');
    relay.join(local);
    relay.offer(local, 1);
    expect(job).toMatchObject({ state: 'queued', contributorId: 'local' });
    bus.requests[0]?.answer({ contributor: { id: 'remote-1', hpkeKey: 'k'.repeat(43), wallet: null, capabilities: capabilities('m') } });
    await settle();
    expect(relay.contributors.get('remote-1')?.openSlots).toBe(1); // kept for the next job

    // A job of another model asks B, and no one listens there (B died): B's kept slot goes back now.
    jobs(1, 'n');
    borrowing.claim(() => ['b']);
    bus.requests[1]?.fail(new Error('no responders'));
    await settle();
    expect(relay.contributors.get('remote-1')?.openSlots ?? 0).toBe(0);
    expect(bus.published).toContainEqual({ subject: 'p.r.b.release', body: { owner: 'a', contributorId: 'remote-1', slots: 1 } });
    jobs(1); // placed on no slot of B's: it waits
    expect([...relay.waitingJobs()].map((j) => j.model)).toEqual(['n', 'm']);
  });
});
