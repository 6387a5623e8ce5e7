/**
 * What the dashboard remembers across reloads, in localStorage: jobs, tokens and nanoTON earned
 * per minute (the earnings chart), the receipts seen (the activity list), and the last
 * benchmark. Small by design: a day of minutes and the last receipts.
 */

/** One minute of work. */
export interface HistoryPoint {
  /** Start of the minute, ms since the epoch. */
  at: number;
  /** Jobs this device finished in that minute. */
  jobs: number;
  /** Tokens (prompt and completion) in the receipts of that minute's jobs. */
  tokens: number;
  /** nanoTON the receipts of that minute's jobs owe this device, a decimal string (absent in older records: 0). */
  earnedNano?: string;
}

/** The chart's columns: one entry per minute from `from` to the current minute, zeros where nothing happened. */
export interface MinuteSeries {
  /** Start of each minute, ms since the epoch. */
  at: number[];
  jobs: number[];
  /** nanoTON earned in each minute. */
  earnedNano: bigint[];
}

/** A signed receipt as the dashboard keeps it. */
export interface SeenReceipt {
  jobId: string;
  model: string;
  tokens: number;
  /** Owed to this device, nanoTON as a decimal string. */
  amountNano: string;
  /** ms since the epoch. */
  at: number;
}

export interface HistoryData {
  points: HistoryPoint[];
  receipts: SeenReceipt[];
  benchmark: { gflops: number; gbps: number; at: number } | null;
}

type KeyValue = Pick<Storage, 'getItem' | 'setItem'>;

const MINUTE = 60_000;
const MAX_POINTS = 24 * 60;
const MAX_RECEIPTS = 200;

export class History {
  #data: HistoryData;

  constructor(
    private readonly storage: KeyValue | null,
    private readonly key = 'spinneret.history',
  ) {
    this.#data = History.parse(storage?.getItem(key) ?? null);
  }

  static parse(raw: string | null): HistoryData {
    const empty: HistoryData = { points: [], receipts: [], benchmark: null };
    if (raw === null) return empty;
    try {
      const data = JSON.parse(raw) as Partial<HistoryData>;
      return {
        points: Array.isArray(data.points) ? data.points.filter((p) => typeof p?.at === 'number') : [],
        receipts: Array.isArray(data.receipts) ? data.receipts.filter((r) => typeof r?.jobId === 'string') : [],
        benchmark: data.benchmark ?? null,
      };
    } catch {
      // A damaged record starts over rather than breaking the page.
      return empty;
    }
  }

  get data(): Readonly<HistoryData> {
    return this.#data;
  }

  /** Counts `count` finished jobs in the minute of `at`. */
  addJobs(count: number, at: number): void {
    if (count <= 0) return;
    this.#bucket(at).jobs += count;
    this.#save();
  }

  /** Keeps receipts not seen before and adds their tokens to their minutes; returns how many were new. */
  addReceipts(receipts: readonly SeenReceipt[]): number {
    const known = new Set(this.#data.receipts.map((r) => r.jobId));
    const fresh = receipts.filter((r) => !known.has(r.jobId));
    for (const r of fresh) {
      const point = this.#bucket(r.at);
      point.tokens += r.tokens;
      point.earnedNano = (BigInt(point.earnedNano ?? '0') + BigInt(r.amountNano)).toString();
    }
    this.#data.receipts = [...this.#data.receipts, ...fresh].sort((a, b) => a.at - b.at).slice(-MAX_RECEIPTS);
    if (fresh.length > 0) this.#save();
    return fresh.length;
  }

  setBenchmark(benchmark: HistoryData['benchmark']): void {
    this.#data.benchmark = benchmark;
    this.#save();
  }

  /** Chart columns: minute starts (seconds, as uPlot wants), jobs per minute, tokens per second (averaged over the minute). */
  series(): [number[], number[], number[]] {
    const points = this.#data.points;
    return [points.map((p) => p.at / 1000), points.map((p) => p.jobs), points.map((p) => Math.round((p.tokens / 60) * 100) / 100)];
  }

  /** Every minute from the one holding `from` to the one holding `now`, with what was done and earned in it. */
  minutes(from: number, now: number): MinuteSeries {
    const first = Math.floor(from / MINUTE) * MINUTE;
    const last = Math.floor(now / MINUTE) * MINUTE;
    const byMinute = new Map(this.#data.points.map((p) => [p.at, p]));
    const out: MinuteSeries = { at: [], jobs: [], earnedNano: [] };
    for (let at = first; at <= last; at += MINUTE) {
      const p = byMinute.get(at);
      out.at.push(at);
      out.jobs.push(p?.jobs ?? 0);
      out.earnedNano.push(BigInt(p?.earnedNano ?? '0'));
    }
    return out;
  }

  /** Jobs finished in the minutes that start within `[from, now]`. */
  jobsSince(from: number): number {
    const first = Math.floor(from / MINUTE) * MINUTE;
    return this.#data.points.filter((p) => p.at >= first).reduce((sum, p) => sum + p.jobs, 0);
  }

  /** When the first minute with work began, ms since the epoch; null when none. */
  firstMinute(): number | null {
    return this.#data.points[0]?.at ?? null;
  }

  #bucket(at: number): HistoryPoint {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    let point = this.#data.points.find((p) => p.at === minute);
    if (point === undefined) {
      point = { at: minute, jobs: 0, tokens: 0 };
      this.#data.points = [...this.#data.points, point].sort((a, b) => a.at - b.at).slice(-MAX_POINTS);
    }
    return point;
  }

  #save(): void {
    try {
      this.storage?.setItem(this.key, JSON.stringify(this.#data));
    } catch {
      // Storage full or denied: the history lasts for this page only.
    }
  }
}

/** Browser localStorage, or null where it is denied. */
export function browserStorage(): KeyValue | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}
