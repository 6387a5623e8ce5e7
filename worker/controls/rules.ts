/**
 * The owner's rules for when this device takes jobs, and their evaluation: a pure function of
 * the rules, the signals the page forwards (battery, idle, visibility), the clock and the
 * recent jobs. The contributor loop calls it on every change and when it says to look again.
 */
import * as v from 'valibot';
import { InvalidInputError } from '../../protocol/errors.ts';
import { JobKind } from '../../protocol/manifest.ts';
import type { PauseRule } from '../../protocol/wire.ts';

const HHMM = v.pipe(v.string(), v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time is HH:MM, 00:00 to 23:59'));

/** A daily window in local time; `end` before `start` runs across midnight (22:00–07:00). */
export const TimeWindow = v.pipe(
  v.strictObject({ start: HHMM, end: HHMM }),
  v.check((w) => w.start !== w.end, 'a window needs different start and end times'),
);
export type TimeWindow = v.InferOutput<typeof TimeWindow>;

/** The owner's rules. Saved by the worker, edited on the Controls card. */
export const Controls = v.strictObject({
  /** The owner paused contributing (the Pause button). */
  paused: v.boolean(),
  /** Share of time the GPU may be busy with jobs, percent: after a job of d ms, rest d·(100−duty)/duty ms. */
  dutyCycle: v.picklist([25, 50, 75, 100]),
  /** Take no jobs while the device runs on battery (not charging). */
  pauseOnBattery: v.boolean(),
  /** Take no jobs while discharging below this battery level, percent (0–100); null: no level. */
  minBatteryPercent: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100))),
  /** Take jobs only while the user is idle or the screen locked (Idle Detection API). */
  onlyWhenIdle: v.boolean(),
  /** Take jobs only inside these local-time windows; empty: any time. */
  schedule: v.pipe(v.array(TimeWindow), v.maxLength(8)),
  /** Job kinds the owner allows; none pauses with `consent`. */
  consent: v.pipe(v.array(JobKind), v.maxLength(4)),
  /** Largest model download offered, MiB; null: no cap. */
  maxDownloadMiB: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1 << 20))),
  /** Largest GPU memory a model may need, MiB; null: no cap (the runtime's default budget applies). */
  maxVramMiB: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1 << 20))),
  /** Keep-alive in the page (an inaudible sound); off by default. The worker only stores it. */
  keepAlive: v.boolean(),
});
export type Controls = v.InferOutput<typeof Controls>;

export const DEFAULT_CONTROLS: Controls = {
  paused: false,
  dutyCycle: 100,
  pauseOnBattery: false,
  minBatteryPercent: null,
  onlyWhenIdle: false,
  schedule: [],
  consent: ['embed', 'generate', 'infer', 'chat'],
  maxDownloadMiB: null,
  maxVramMiB: null,
  keepAlive: false,
};

/** Checks rules from the page or storage; a partial update is merged over `base`. */
export function parseControls(input: unknown, base: Controls = DEFAULT_CONTROLS): Controls {
  const merged = typeof input === 'object' && input !== null ? { ...base, ...input } : input;
  const result = v.safeParse(Controls, merged);
  if (!result.success)
    throw new InvalidInputError(`These contributor controls are not valid: ${v.summarize(result.issues)}. Fix them and save again.`);
  return { ...result.output, consent: [...new Set(result.output.consent)] };
}

/**
 * What the page knows and the worker cannot see. `null` battery: the Battery Status API is
 * missing. Idle: `active`/`idle` from the Idle Detection API (a locked screen counts as idle),
 * `denied` when permission was refused, `unsupported` when the API is missing, `unknown` before
 * the page asked.
 */
export interface Signals {
  visibility: 'visible' | 'hidden';
  battery: { charging: boolean; /** 0–1. */ level: number } | null;
  idle: 'active' | 'idle' | 'denied' | 'unsupported' | 'unknown';
}

export const DEFAULT_SIGNALS: Signals = { visibility: 'visible', battery: null, idle: 'unknown' };

export const Signals = v.strictObject({
  visibility: v.picklist(['visible', 'hidden']),
  battery: v.nullable(v.strictObject({ charging: v.boolean(), level: v.pipe(v.number(), v.minValue(0), v.maxValue(1)) })),
  idle: v.picklist(['active', 'idle', 'denied', 'unsupported', 'unknown']),
});

export function parseSignals(input: unknown, base: Signals = DEFAULT_SIGNALS): Signals {
  const merged = typeof input === 'object' && input !== null ? { ...base, ...input } : input;
  const result = v.safeParse(Signals, merged);
  if (!result.success) throw new InvalidInputError(`These device signals are not valid: ${v.summarize(result.issues)}.`);
  return result.output;
}

/** A rule that is set but cannot work here, and why (shown to the owner, never silently ignored). */
export interface UnusableRule {
  rule: 'battery' | 'idle';
  reason: 'unsupported' | 'denied' | 'not-asked';
}

export interface Verdict {
  /** The first rule that stops new jobs now, or null. */
  pausedBy: PauseRule | null;
  /** When a time-based rule may change its answer, ms since the epoch; null: only a signal or edit can. */
  recheckAt: number | null;
  unusable: UnusableRule[];
}

export interface Moment {
  /** ms since the epoch. */
  now: number;
  /** Minutes to add to UTC to get local time (the negated `Date#getTimezoneOffset()`). */
  utcOffsetMin: number;
}

/** The moment of `now` in this runtime's time zone. */
export function localMoment(now: number): Moment {
  return { now, utcOffsetMin: -new Date(now).getTimezoneOffset() };
}

const DAY_MIN = 24 * 60;

function minutes(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

/** Whether local minute `m` of the day is inside the window (start inclusive, end exclusive). */
export function inWindow(window: TimeWindow, m: number): boolean {
  const start = minutes(window.start);
  const end = minutes(window.end);
  return start < end ? m >= start && m < end : m >= start || m < end;
}

/** Whether the schedule allows jobs at `moment`, and when the answer next changes. */
export function scheduleState(schedule: readonly TimeWindow[], moment: Moment): { open: boolean; changesAt: number | null } {
  if (schedule.length === 0) return { open: true, changesAt: null };
  const localMs = moment.now + moment.utcOffsetMin * 60_000;
  const dayMs = ((localMs % 86_400_000) + 86_400_000) % 86_400_000;
  const m = Math.floor(dayMs / 60_000);
  const open = schedule.some((w) => inWindow(w, m));
  const toNextMinute = 60_000 - (dayMs % 60_000);
  for (let step = 1; step <= DAY_MIN; step++) {
    const next = (m + step) % DAY_MIN;
    if (schedule.some((w) => inWindow(w, next)) !== open) return { open, changesAt: moment.now + toNextMinute + (step - 1) * 60_000 };
  }
  return { open, changesAt: null };
}

/** How long to rest after a job of `ranMs` under a duty cycle of `duty` percent, ms. */
export function restAfter(ranMs: number, duty: Controls['dutyCycle']): number {
  return duty >= 100 ? 0 : Math.ceil((Math.max(0, ranMs) * (100 - duty)) / duty);
}

/**
 * Applies the rules in order: user pause, remote pause, a GPU the runtime gave up on with no model
 * left to run without it (`deviceUnusable`), consent, schedule, battery, idle, then
 * the duty cycle's rest (`restUntil`, from {@link restAfter}). A running job is never stopped:
 * the verdict only decides whether new slots are offered.
 */
export function evaluate(
  controls: Controls,
  signals: Signals,
  state: { remotePaused: boolean; restUntil: number; deviceUnusable?: boolean },
  moment: Moment,
): Verdict {
  const unusable: UnusableRule[] = [];
  const batteryRule = controls.pauseOnBattery || controls.minBatteryPercent !== null;
  if (batteryRule && signals.battery === null) unusable.push({ rule: 'battery', reason: 'unsupported' });
  if (controls.onlyWhenIdle && signals.idle !== 'active' && signals.idle !== 'idle')
    unusable.push({ rule: 'idle', reason: signals.idle === 'unknown' ? 'not-asked' : signals.idle });
  const schedule = scheduleState(controls.schedule, moment);
  const resting = state.restUntil > moment.now;
  const pausedBy = ((): PauseRule | null => {
    if (controls.paused) return 'user';
    if (state.remotePaused) return 'remote';
    if (state.deviceUnusable === true) return 'device';
    if (controls.consent.length === 0) return 'consent';
    if (!schedule.open) return 'schedule';
    const battery = signals.battery;
    if (battery !== null && !battery.charging) {
      if (controls.pauseOnBattery) return 'battery';
      if (controls.minBatteryPercent !== null && battery.level * 100 < controls.minBatteryPercent) return 'battery';
    }
    if (controls.onlyWhenIdle && signals.idle === 'active') return 'idle';
    if (resting) return 'duty-cycle';
    return null;
  })();
  const times = [schedule.changesAt, resting ? state.restUntil : null].filter((t): t is number => t !== null);
  return { pausedBy, recheckAt: times.length === 0 ? null : Math.min(...times), unusable };
}
