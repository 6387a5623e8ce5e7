/**
 * The measured pace of the job loop: finished jobs per minute and the share of time at least
 * one job was running, over a sliding window. Sent to the coordinator in `status` so leases
 * fit what the tab really does (a hidden or duty-cycled tab is slower).
 */

/** One job's run, local ms since the epoch. */
export interface JobSpan {
  start: number;
  end: number;
}

export interface Pace {
  jobsPerMinute: number;
  /** 0–1. */
  busyFraction: number;
}

/** Spans shown to the page and the tests. */
const SHOWN = 200;
/** Most spans kept for the window, whatever its length (a bound on memory). */
const MAX_KEPT = 50_000;

export class PaceMeter {
  readonly #windowMs: number;
  readonly #spans: JobSpan[] = [];
  #since: number | null = null;

  /** `windowMs`: how far back the pace looks, ms (5 minutes by default). */
  constructor(windowMs = 5 * 60_000) {
    this.#windowMs = windowMs;
  }

  /** Measuring starts (contributing started); the window never reaches back before it. */
  begin(now: number): void {
    this.#since = now;
    this.#spans.length = 0;
  }

  record(span: JobSpan): void {
    this.#spans.push(span);
    // Spans that ended before the window are no longer needed, except the last few shown.
    let drop = 0;
    while (drop < this.#spans.length - SHOWN && (this.#spans[drop]?.end ?? Infinity) <= span.end - this.#windowMs) drop++;
    drop = Math.max(drop, this.#spans.length - MAX_KEPT);
    if (drop > 0) this.#spans.splice(0, drop);
  }

  /** The last jobs' runs (up to 200), oldest first. */
  spans(): JobSpan[] {
    return this.#spans.slice(-SHOWN).map((s) => ({ ...s }));
  }

  /**
   * Pace over the window ending at `now`, counting jobs still running from `running` (their
   * start times); undefined before one second of measuring.
   */
  pace(now: number, running: readonly number[] = []): Pace | undefined {
    if (this.#since === null) return undefined;
    const from = Math.max(this.#since, now - this.#windowMs);
    const length = now - from;
    if (length < 1000) return undefined;
    const spans = [...this.#spans.filter((s) => s.end > from), ...running.map((start) => ({ start, end: now }))]
      .map((s) => ({ start: Math.max(s.start, from), end: Math.min(s.end, now) }))
      .filter((s) => s.end > s.start)
      .sort((a, b) => a.start - b.start);
    let busy = 0;
    let reach = from;
    for (const s of spans) {
      if (s.end <= reach) continue;
      busy += s.end - Math.max(s.start, reach);
      reach = s.end;
    }
    const finished = this.#spans.filter((s) => s.end > from && s.end <= now).length;
    return { jobsPerMinute: round((finished * 60_000) / length), busyFraction: Math.min(1, round(busy / length)) };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
