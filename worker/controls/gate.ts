/**
 * The rules applied over time: holds the owner's controls, the page's signals, a remote pause
 * and the duty cycle's rest, re-evaluates on every change and on a timer when a time-based
 * rule (schedule, rest) is due to flip, and tells the job loop when the verdict changed.
 */
import type { Clock } from '../network/connection.ts';
import type { JobSpan } from './pace.ts';
import { evaluate, localMoment, restAfter, type Controls, type Moment, type Signals, type Verdict } from './rules.ts';

/** Look again at least this often while active, ms: a timer can be late after sleep or a clock change. */
const MAX_RECHECK_MS = 60_000;

export interface GateOptions {
  clock: Clock;
  controls: Controls;
  signals: Signals;
  remotePaused: boolean;
  /** The local moment of a time; {@link localMoment} by default (tests pin the time zone). */
  moment?: (now: number) => Moment;
}

export class Gate {
  #controls: Controls;
  #signals: Signals;
  #remotePaused: boolean;
  /** The GPU is gone for good and nothing runs without it (a reload is needed): pauses with `device`. */
  #deviceUnusable = false;
  #restUntil = 0;
  #verdict: Verdict;
  #timer: unknown = null;
  #active = false;
  readonly #clock: Clock;
  readonly #moment: (now: number) => Moment;
  readonly #onChange: () => void;

  /** `onChange` runs after each change of the verdict (the pausing rule, a rule becoming unusable). */
  constructor(options: GateOptions, onChange: () => void) {
    this.#clock = options.clock;
    this.#controls = options.controls;
    this.#signals = options.signals;
    this.#remotePaused = options.remotePaused;
    this.#moment = options.moment ?? localMoment;
    this.#onChange = onChange;
    this.#verdict = this.#evaluate();
  }

  get controls(): Controls {
    return this.#controls;
  }

  get signals(): Signals {
    return this.#signals;
  }

  get remotePaused(): boolean {
    return this.#remotePaused;
  }

  /** When the duty cycle's rest ends, ms since the epoch (0 or past: not resting). */
  get restUntil(): number {
    return this.#restUntil;
  }

  verdict(): Verdict {
    return this.#verdict;
  }

  /** Starts the timers (contributing started). */
  start(): void {
    this.#active = true;
    this.refresh();
  }

  /** Stops the timers and forgets the rest. */
  stop(): void {
    this.#active = false;
    this.#restUntil = 0;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  setControls(controls: Controls): void {
    this.#controls = controls;
    // A new duty cycle applies from the next job on; a rest under the old one ends now when the cycle is 100%.
    if (controls.dutyCycle === 100) this.#restUntil = 0;
    this.refresh();
  }

  setSignals(signals: Signals): void {
    this.#signals = signals;
    this.refresh();
  }

  setRemotePaused(paused: boolean): void {
    this.#remotePaused = paused;
    this.refresh();
  }

  /** The runtime gave up on the GPU and no model runs without it (true); lasts until this tab's worker is made again. */
  setDeviceUnusable(unusable: boolean): void {
    this.#deviceUnusable = unusable;
    this.refresh();
  }

  /** A job ended: under a duty cycle, rest in proportion to how long it ran. Returns whether the verdict changed. */
  jobEnded(span: JobSpan): boolean {
    const rest = restAfter(span.end - span.start, this.#controls.dutyCycle);
    if (rest > 0) this.#restUntil = Math.max(this.#restUntil, span.end + rest);
    return this.refresh();
  }

  /** Evaluates now, re-arms the timer, and calls `onChange` when the verdict changed; returns whether it did. */
  refresh(): boolean {
    const before = this.#verdict;
    this.#verdict = this.#evaluate();
    this.#arm();
    const changed =
      before.pausedBy !== this.#verdict.pausedBy || JSON.stringify(before.unusable) !== JSON.stringify(this.#verdict.unusable);
    if (changed) this.#onChange();
    return changed;
  }

  #evaluate(): Verdict {
    const now = this.#clock.now();
    return evaluate(
      this.#controls,
      this.#signals,
      { remotePaused: this.#remotePaused, restUntil: this.#restUntil, deviceUnusable: this.#deviceUnusable },
      this.#moment(now),
    );
  }

  #arm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#active) return;
    const now = this.#clock.now();
    const at = Math.min(this.#verdict.recheckAt ?? Infinity, now + MAX_RECHECK_MS);
    this.#timer = this.#clock.setTimeout(() => this.refresh(), Math.max(0, at - now));
  }
}
