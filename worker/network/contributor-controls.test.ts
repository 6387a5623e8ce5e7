/** The owner's rules and the fleet's remote control, enforced by the job loop against a scripted coordinator. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { contributorOnFake } from '../../testing/fake-coordinator-socket.ts';
import type { ContributorOptions } from './contributor.ts';
import { FakeCoordinator, type FakeSession } from './fake-coordinator.ts';
import { chat, embed, FakeRuntime } from './fake-runtime.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: Partial<ContributorOptions> = {}, runtime = new FakeRuntime()) {
  const coordinator = new FakeCoordinator();
  const contributor = await contributorOnFake(coordinator, { runtime, ...options }, cleanups);
  contributor.start();
  const session = await coordinator.session(0);
  const capabilities = await session.next('capabilities');
  const lease = await session.next('lease');
  const status = await session.next('status');
  return { session, contributor, runtime, capabilities, lease, status };
}

/** The next `lease` offering `slots`, skipping others. */
const leaseOf = (session: FakeSession, slots: number) => session.next('lease', (m) => m.slots === slots);

describe('Contributor controls', () => {
  it('sends status after welcome and on every change: visibility, the pausing rule, the pace', async () => {
    const runtime = new FakeRuntime();
    runtime.chatDelayMs = 1100; // the pace is measured from one second on
    const { session, contributor, status } = await setup({ signals: { visibility: 'visible' }, label: 'lab-3' }, runtime);
    expect(status).toEqual({ v: 1, type: 'status', visibility: 'visible', pausedBy: null, label: 'lab-3' });
    const job = await session.sendJob(chat());
    await session.readResult(job);
    contributor.setSignals({ visibility: 'hidden' });
    const hidden = await session.next('status', (m) => m.visibility === 'hidden');
    expect(hidden.pausedBy).toBeNull();
    expect(hidden.pace?.jobsPerMinute).toBeGreaterThan(0);
    expect(hidden.pace?.busyFraction).toBeGreaterThan(0);
    expect(contributor.status()).toMatchObject({ visibility: 'hidden', jobsDone: 1, recentJobs: [expect.any(Object)] });
  });

  it('a user pause lets the running job finish, offers no slot and says why; resume offers it again', async () => {
    const { session, contributor, runtime } = await setup();
    const job = await session.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    contributor.setControls({ paused: true });
    expect(await session.next('status', (m) => m.pausedBy === 'user')).toMatchObject({ pausedBy: 'user' });
    runtime.release();
    expect((await session.readResult(job)).result).toMatchObject({ text: 'Hello!' });
    await leaseOf(session, 0);
    await vi.waitFor(() => expect(contributor.status()).toMatchObject({ state: 'paused', pausedBy: 'user', jobsDone: 1 }));
    // A job the coordinator sends anyway (a race with the lease) is refused, not run.
    const late = await session.sendJob(chat());
    expect(await session.next('fail', (m) => m.jobId === late.jobId)).toMatchObject({ error: { code: 'QUOTA' } });
    contributor.setControls({ paused: false });
    await leaseOf(session, 1);
    expect(await session.next('status', (m) => m.pausedBy === null)).toBeDefined();
    expect(contributor.status()).toMatchObject({ state: 'connected', pausedBy: null });
  });

  it('obeys remote pause and resume, keeps the pause for saving, and shows an owner message', async () => {
    const saved: boolean[] = [];
    const { session, contributor } = await setup({ onRemotePause: (paused) => saved.push(paused) });
    session.send({ v: 1, type: 'control', action: 'pause' });
    await leaseOf(session, 0);
    expect(await session.next('status', (m) => m.pausedBy === 'remote')).toBeDefined();
    session.send({ v: 1, type: 'control', action: 'message', text: 'Lab closes at six.' });
    await vi.waitFor(() => expect(contributor.status().ownerMessage).toMatchObject({ text: 'Lab closes at six.', at: expect.any(Number) }));
    expect(contributor.status()).toMatchObject({ state: 'paused', pausedBy: 'remote' });
    session.send({ v: 1, type: 'control', action: 'resume' });
    await leaseOf(session, 1);
    expect(saved).toEqual([true, false]);
    expect(contributor.status().pausedBy).toBeNull();
  });

  it('a remote pause saved from an earlier session holds from the start', async () => {
    const { lease, status, contributor } = await setup({ remotePaused: true });
    expect(lease.slots).toBe(0);
    expect(status.pausedBy).toBe('remote');
    expect(contributor.status().state).toBe('paused');
  });

  it('pauses below the battery level while discharging and resumes on charging', async () => {
    const { session, contributor } = await setup({
      controls: { minBatteryPercent: 50 },
      signals: { battery: { charging: false, level: 0.8 } },
    });
    contributor.setSignals({ battery: { charging: false, level: 0.4 } });
    await leaseOf(session, 0);
    expect(contributor.status()).toMatchObject({ pausedBy: 'battery', state: 'paused' });
    contributor.setSignals({ battery: { charging: true, level: 0.41 } });
    await leaseOf(session, 1);
    expect(contributor.status().pausedBy).toBeNull();
  });

  it('says the idle rule cannot work when detection was denied, and takes jobs anyway', async () => {
    const { contributor, lease } = await setup({ controls: { onlyWhenIdle: true }, signals: { idle: 'denied' } });
    expect(lease.slots).toBe(1);
    expect(contributor.status()).toMatchObject({ pausedBy: null, unusable: [{ rule: 'idle', reason: 'denied' }] });
    contributor.setSignals({ idle: 'active' });
    expect(contributor.status()).toMatchObject({ pausedBy: 'idle', unusable: [] });
  });

  it('under a 50% duty cycle the measured busy share is within 10 points of 50%', async () => {
    const runtime = new FakeRuntime();
    runtime.chatDelayMs = 150;
    const { session, contributor } = await setup({ controls: { dutyCycle: 50 } }, runtime);
    for (let i = 0; i < 6; i++) {
      const job = await session.sendJob(chat());
      await session.readResult(job);
      await leaseOf(session, 0);
      await leaseOf(session, 1);
    }
    const spans = contributor.status().recentJobs;
    expect(spans).toHaveLength(6);
    // From the job timings: each cycle is one job, its rest and the next job's arrival.
    const cycles = spans.slice(0, -1);
    const busy = cycles.reduce((sum, s) => sum + s.end - s.start, 0);
    const span = (spans.at(-1)?.start ?? 0) - (spans[0]?.start ?? 0);
    expect(Math.abs(busy / span - 0.5)).toBeLessThan(0.1);
    expect(Math.abs((contributor.status().pace?.busyFraction ?? 0) - 0.5)).toBeLessThan(0.15);
  });

  it('leaves out kinds without consent and models over the caps, and refuses such jobs', async () => {
    const runtime = new FakeRuntime();
    runtime.embedCached = false;
    const { session, contributor, capabilities } = await setup({ consent: ['chat'], controls: { maxDownloadMiB: 10 } }, runtime);
    expect(capabilities.consent).toEqual(['chat']);
    expect(capabilities.models.map((m) => m.id)).toEqual(['chat-model']);
    const refused = await session.sendJob(embed());
    expect(await session.next('fail', (m) => m.jobId === refused.jobId)).toMatchObject({ error: { code: 'CONFLICT' } });
    contributor.setControls({ consent: ['chat', 'embed'], maxDownloadMiB: null, maxVramMiB: 500 });
    const next = await session.next('capabilities');
    expect(next.consent).toEqual(['chat', 'embed']);
    expect(next.models.map((m) => m.id)).toEqual(['embed-model']);
    const capped = await session.sendJob(chat());
    expect(await session.next('fail', (m) => m.jobId === capped.jobId)).toMatchObject({ error: { code: 'CONFLICT' } });
    expect(runtime.maxRunning).toBe(0);
    contributor.setControls({ consent: [] });
    await leaseOf(session, 0);
    expect(contributor.status().pausedBy).toBe('consent');
  });

  it('shows a recovered GPU device loss in the status', async () => {
    const { contributor, runtime } = await setup();
    runtime.loseDevice('driver reset');
    expect(contributor.status().device).toMatchObject({ losses: 1, lastLoss: { message: 'driver reset' } });
  });
});
