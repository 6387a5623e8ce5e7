import { describe, expect, it } from 'vitest';
import { Gate } from './gate.ts';
import { PaceMeter } from './pace.ts';
import { DEFAULT_SIGNALS, parseControls } from './rules.ts';
import { MemoryControlsStore, readSaved } from './store.ts';
import { ManualClock } from '../network/manual-clock.ts';

function gate(controls = {}, clock = new ManualClock(Date.UTC(2026, 10, 28, 21, 59))) {
  const changes: Array<string | null> = [];
  const g = new Gate(
    {
      clock,
      controls: parseControls(controls),
      signals: DEFAULT_SIGNALS,
      remotePaused: false,
      moment: (now) => ({ now, utcOffsetMin: 0 }),
    },
    () => changes.push(g.verdict().pausedBy),
  );
  g.start();
  return { g, clock, changes };
}

describe('Gate', () => {
  it('rests after each job under a 50% duty cycle, and the timer ends the rest', () => {
    const { g, clock, changes } = gate({ dutyCycle: 50 });
    const start = clock.now();
    clock.advance(400);
    expect(g.jobEnded({ start, end: clock.now() })).toBe(true);
    expect(g.verdict()).toMatchObject({ pausedBy: 'duty-cycle', recheckAt: clock.now() + 400 });
    clock.advance(399);
    expect(g.verdict().pausedBy).toBe('duty-cycle');
    clock.advance(1);
    expect(g.verdict().pausedBy).toBeNull();
    expect(changes).toEqual(['duty-cycle', null]);
  });

  it('keeps the busy share near the setting over many jobs (a simulated loop)', () => {
    for (const duty of [25, 50, 75, 100] as const) {
      const { g, clock } = gate({ dutyCycle: duty });
      const pace = new PaceMeter();
      pace.begin(clock.now());
      for (let i = 0; i < 40; i++) {
        while (g.verdict().pausedBy !== null) clock.advance(10);
        const start = clock.now();
        clock.advance(200 + (i % 5) * 50);
        pace.record({ start, end: clock.now() });
        g.jobEnded({ start, end: clock.now() });
        clock.advance(20); // the next job takes a moment to arrive
      }
      const busy = pace.pace(clock.now())?.busyFraction ?? 0;
      expect(Math.abs(busy - duty / 100)).toBeLessThan(0.1);
    }
  });

  it('opens and closes with a schedule across midnight on its own timer', () => {
    const { g, clock, changes } = gate({ schedule: [{ start: '22:00', end: '07:00' }] });
    expect(g.verdict().pausedBy).toBe('schedule');
    clock.advance(60_000);
    expect(g.verdict().pausedBy).toBeNull();
    clock.advance(9 * 3_600_000);
    expect(g.verdict().pausedBy).toBe('schedule');
    expect(changes).toEqual([null, 'schedule']);
  });

  it('follows signals, edits and remote pauses, and stops its timer when stopped', () => {
    const { g, clock, changes } = gate({ minBatteryPercent: 30 });
    g.setSignals({ ...DEFAULT_SIGNALS, battery: { charging: false, level: 0.2 } });
    g.setSignals({ ...DEFAULT_SIGNALS, battery: { charging: true, level: 0.2 } });
    g.setRemotePaused(true);
    g.setRemotePaused(false);
    g.setControls(parseControls({ paused: true }));
    expect(changes).toEqual(['battery', null, 'remote', null, 'user']);
    expect(clock.pending).toBe(1);
    g.stop();
    expect(clock.pending).toBe(0);
  });
});

describe('PaceMeter', () => {
  it('counts jobs per minute and the busy share, overlapping jobs once', () => {
    const pace = new PaceMeter(60_000);
    pace.begin(0);
    expect(pace.pace(500)).toBeUndefined();
    pace.record({ start: 0, end: 10_000 });
    pace.record({ start: 5_000, end: 15_000 });
    pace.record({ start: 30_000, end: 40_000 });
    expect(pace.pace(60_000)).toEqual({ jobsPerMinute: 3, busyFraction: 0.417 });
    // Later, the window slides: only the last minute counts, and a running job counts as busy.
    expect(pace.pace(90_000, [80_000])).toEqual({ jobsPerMinute: 1, busyFraction: 0.333 });
  });

  it('counts every job in the window at a fast pace, and shows only the last 200', () => {
    const pace = new PaceMeter(60_000);
    pace.begin(0);
    for (let i = 0; i < 1200; i++) pace.record({ start: i * 100, end: i * 100 + 50 });
    expect(pace.pace(120_000)).toEqual({ jobsPerMinute: 600, busyFraction: 0.5 });
    expect(pace.spans()).toHaveLength(200);
    expect(pace.spans().at(-1)).toEqual({ start: 119_900, end: 119_950 });
  });
});

describe('saved controls', () => {
  it('round-trip, and damaged records fall back to the defaults', async () => {
    const store = new MemoryControlsStore();
    await store.save({ controls: parseControls({ dutyCycle: 25 }), contributing: true, remotePaused: true });
    expect(await store.load()).toMatchObject({ controls: { dutyCycle: 25 }, contributing: true, remotePaused: true });
    expect(readSaved({ controls: { dutyCycle: 33 }, contributing: 'yes' })).toEqual({
      controls: parseControls({}),
      contributing: false,
      remotePaused: false,
    });
    expect(readSaved(null).contributing).toBe(false);
  });
});
