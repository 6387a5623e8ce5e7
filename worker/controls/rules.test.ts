import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../protocol/errors.ts';
import {
  DEFAULT_CONTROLS,
  DEFAULT_SIGNALS,
  evaluate,
  inWindow,
  parseControls,
  restAfter,
  scheduleState,
  type Controls,
  type Signals,
} from './rules.ts';

/** 2026-11-28 at `hh:mm` local time in a zone `offsetMin` east of UTC. */
function at(hhmm: string, offsetMin = 0): { now: number; utcOffsetMin: number } {
  const [h, m] = hhmm.split(':').map(Number);
  return { now: Date.UTC(2026, 10, 28, h ?? 0, m ?? 0) - offsetMin * 60_000, utcOffsetMin: offsetMin };
}

const free = { remotePaused: false, restUntil: 0 };
const judge = (controls: Partial<Controls>, signals: Partial<Signals> = {}, moment = at('12:00'), state = free) =>
  evaluate(parseControls(controls), { ...DEFAULT_SIGNALS, ...signals }, state, moment);

describe('duty cycle', () => {
  it('rests d·(1−duty)/duty after a job of d ms', () => {
    expect(restAfter(1000, 100)).toBe(0);
    expect(restAfter(1000, 75)).toBe(334);
    expect(restAfter(1000, 50)).toBe(1000);
    expect(restAfter(1000, 25)).toBe(3000);
    expect(restAfter(-5, 25)).toBe(0);
  });

  it('pauses with duty-cycle until the rest ends, and says when to look again', () => {
    const m = at('12:00');
    const resting = judge({ dutyCycle: 50 }, {}, m, { remotePaused: false, restUntil: m.now + 800 });
    expect(resting).toEqual({ pausedBy: 'duty-cycle', recheckAt: m.now + 800, unusable: [] });
    expect(judge({ dutyCycle: 50 }, {}, m, { remotePaused: false, restUntil: m.now }).pausedBy).toBeNull();
  });

  it('only accepts 25, 50, 75 or 100 percent, with an error that says what to fix', () => {
    expect(() => parseControls({ dutyCycle: 60 })).toThrow(InvalidInputError);
    expect(() => parseControls({ dutyCycle: 60 })).toThrow(/dutyCycle|Fix them/);
  });
});

describe('battery', () => {
  it('pauses on battery when asked, and resumes when charging', () => {
    expect(judge({ pauseOnBattery: true }, { battery: { charging: false, level: 0.9 } }).pausedBy).toBe('battery');
    expect(judge({ pauseOnBattery: true }, { battery: { charging: true, level: 0.1 } }).pausedBy).toBeNull();
  });

  it('pauses below the level only while discharging', () => {
    const rule = { minBatteryPercent: 40 };
    expect(judge(rule, { battery: { charging: false, level: 0.39 } }).pausedBy).toBe('battery');
    expect(judge(rule, { battery: { charging: false, level: 0.4 } }).pausedBy).toBeNull();
    expect(judge(rule, { battery: { charging: true, level: 0.2 } }).pausedBy).toBeNull();
  });

  it('without the Battery Status API the rule is unusable, not a pause', () => {
    const verdict = judge({ pauseOnBattery: true }, { battery: null });
    expect(verdict.pausedBy).toBeNull();
    expect(verdict.unusable).toEqual([{ rule: 'battery', reason: 'unsupported' }]);
  });
});

describe('idle only', () => {
  it('pauses while the user is active and works while idle', () => {
    expect(judge({ onlyWhenIdle: true }, { idle: 'active' }).pausedBy).toBe('idle');
    expect(judge({ onlyWhenIdle: true }, { idle: 'idle' }).pausedBy).toBeNull();
  });

  it.each([
    ['denied', 'denied'],
    ['unsupported', 'unsupported'],
    ['unknown', 'not-asked'],
  ] as const)('when detection is %s the rule says so and does not pause', (idle, reason) => {
    const verdict = judge({ onlyWhenIdle: true }, { idle });
    expect(verdict.pausedBy).toBeNull();
    expect(verdict.unusable).toEqual([{ rule: 'idle', reason }]);
  });

  it('an idle signal does not matter when the rule is off', () => {
    expect(judge({}, { idle: 'denied' })).toEqual({ pausedBy: null, recheckAt: null, unusable: [] });
  });
});

describe('schedule', () => {
  const night = [{ start: '22:00', end: '07:00' }];

  it('works inside a window across midnight and pauses outside it', () => {
    expect(inWindow(night[0] ?? { start: '', end: '' }, 23 * 60)).toBe(true);
    for (const time of ['22:00', '23:59', '00:00', '06:59']) expect(judge({ schedule: night }, {}, at(time)).pausedBy).toBeNull();
    for (const time of ['07:00', '12:00', '21:59']) expect(judge({ schedule: night }, {}, at(time)).pausedBy).toBe('schedule');
  });

  it('reads local time: 23:30 UTC is 08:30 in a zone nine hours east', () => {
    const moment = { now: Date.UTC(2026, 10, 28, 23, 30), utcOffsetMin: 9 * 60 };
    expect(judge({ schedule: night }, {}, moment).pausedBy).toBe('schedule');
    expect(judge({ schedule: night }, {}, { ...moment, utcOffsetMin: 0 }).pausedBy).toBeNull();
  });

  it('says when the window opens or closes next', () => {
    const noon = at('12:00');
    expect(scheduleState(night, noon)).toEqual({ open: false, changesAt: noon.now + 10 * 3_600_000 });
    const late = at('23:15');
    expect(scheduleState(night, late)).toEqual({ open: true, changesAt: late.now + (7 * 60 + 45) * 60_000 });
    expect(judge({ schedule: night }, {}, noon).recheckAt).toBe(noon.now + 10 * 3_600_000);
  });

  it('joins windows and rejects a malformed or empty one', () => {
    const two = [
      { start: '08:00', end: '09:00' },
      { start: '09:00', end: '10:00' },
    ];
    const eight = at('08:30');
    expect(scheduleState(two, eight)).toEqual({ open: true, changesAt: eight.now + 90 * 60_000 });
    expect(() => parseControls({ schedule: [{ start: '25:00', end: '07:00' }] })).toThrow(InvalidInputError);
    expect(() => parseControls({ schedule: [{ start: '07:00', end: '07:00' }] })).toThrow(/different start and end/);
  });
});

describe('order and consent', () => {
  it('names the first rule in order: user, remote, device, consent, schedule, battery, idle, duty cycle', () => {
    const all: Partial<Controls> = {
      paused: true,
      consent: [],
      schedule: [{ start: '01:00', end: '02:00' }],
      pauseOnBattery: true,
      onlyWhenIdle: true,
    };
    const signals = { battery: { charging: false, level: 1 }, idle: 'active' as const };
    const m = at('12:00');
    const rest = { remotePaused: true, restUntil: m.now + 1000, deviceUnusable: true };
    const seen: Array<string | null> = [];
    let controls = parseControls(all);
    let state = rest;
    for (const lift of ['paused', 'remote', 'device', 'consent', 'schedule', 'battery', 'idle', 'rest'] as const) {
      seen.push(evaluate(controls, { ...DEFAULT_SIGNALS, ...signals }, state, m).pausedBy);
      if (lift === 'paused') controls = { ...controls, paused: false };
      if (lift === 'remote') state = { ...state, remotePaused: false };
      if (lift === 'device') state = { ...state, deviceUnusable: false };
      if (lift === 'consent') controls = { ...controls, consent: ['chat'] };
      if (lift === 'schedule') controls = { ...controls, schedule: [] };
      if (lift === 'battery') controls = { ...controls, pauseOnBattery: false };
      if (lift === 'idle') controls = { ...controls, onlyWhenIdle: false };
      if (lift === 'rest') state = { ...state, restUntil: 0 };
    }
    seen.push(evaluate(controls, { ...DEFAULT_SIGNALS, ...signals }, state, m).pausedBy);
    expect(seen).toEqual(['user', 'remote', 'device', 'consent', 'schedule', 'battery', 'idle', 'duty-cycle', null]);
  });

  it('merges a partial update over saved rules and drops repeated kinds', () => {
    const base = parseControls({ dutyCycle: 25, consent: ['chat'] });
    expect(parseControls({ consent: ['embed', 'embed'] }, base)).toEqual({ ...DEFAULT_CONTROLS, dutyCycle: 25, consent: ['embed'] });
    expect(() => parseControls({ consent: ['mine-bitcoin'] })).toThrow(InvalidInputError);
    expect(() => parseControls({ maxVramMiB: 0 })).toThrow(InvalidInputError);
  });
});
