/**
 * The dispatch benchmark runs each server (the coordinator, a coordinator replica of several,
 * or the raw echo server) in a child process of its own — so it has a core to itself, as it would in production, and its
 * memory is measured alone — and drives it from the parent over Node's IPC channel.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CoordinatorStats } from '../../coordinator/app.ts';
import type { EchoResult, EchoRunOptions } from './echo.ts';
import type { LoadResult } from './requesters.ts';
import { withTimeout } from './stats.ts';

export type ChildMode = 'coordinator' | 'echo' | 'replica';

/** A replica's place (mode `replica`): its id, the PostgreSQL schema it shares, and NATS. */
export interface ReplicaPlace {
  replicaId: string;
  databaseUrl: string;
  schema: string;
  natsUrl: string;
}

export interface MemorySample {
  heapUsed: number;
  rss: number;
  external: number;
  /** True when the sample was taken after a full GC (`--expose-gc`). */
  afterGc: boolean;
}

export interface CpuSample {
  /** User + system CPU time of the process so far, ms. */
  cpuMs: number;
  /** Wall clock of the sample, ms. */
  at: number;
}

/** In-process requester load in the coordinator's process, through `app.fetch`. */
export interface InProcessLoad {
  lanes: number;
  /** Use one API key for every lane instead of one per lane. */
  sharedKey: boolean;
  model: string;
  payloadBytes: number;
  /** Warm-up start, epoch ms of the child's clock. */
  startAt: number;
  warmupMs: number;
  windowMs: number;
  maxJobs: number;
}

export interface CoordinatorReport {
  stats: CoordinatorStats;
  /** Job records put but not yet written to the store. */
  bufferedJobs: number | null;
  /** `spinneret_dispatch_latency_seconds` histogram: cumulative counts by upper bound (s). */
  dispatchHistogram: { le: string; count: number }[];
  /** Unexpected errors the coordinator logged. */
  loggedErrors: string[];
  /** Event-loop delay since the last report, ms. */
  loop: { p99: number; max: number };
}

export type ChildRequest =
  | { cmd: 'memory' }
  | { cmd: 'cpu' }
  | { cmd: 'clock' }
  | { cmd: 'connected' }
  | { cmd: 'peers' }
  | { cmd: 'report' }
  | { cmd: 'load'; options: InProcessLoad }
  | { cmd: 'echo'; options: EchoRunOptions }
  | { cmd: 'close' };

export interface ChildResults {
  memory: MemorySample;
  cpu: CpuSample;
  clock: number;
  connected: number;
  /** Replica only: the live peers it hears. */
  peers: number;
  report: CoordinatorReport;
  load: LoadResult;
  echo: EchoResult;
  close: null;
}

/** What a child says once it listens. */
export interface ChildReady {
  type: 'ready';
  url: string;
  /** Coordinator only: one API key secret per lane. */
  keys: string[];
  /** Coordinator only: a key for lanes that share one. */
  sharedKey: string;
}

export type ToChild = { id: number; request: ChildRequest };
export type FromChild =
  ChildReady | { type: 'result'; id: number; ok: true; result: unknown } | { type: 'result'; id: number; ok: false; error: string };

/** A server process and a typed call into it. */
export class Child {
  readonly #process: ChildProcess;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  #nextId = 1;
  #exited: Promise<void>;
  #gone = false;

  private constructor(
    child: ChildProcess,
    readonly ready: ChildReady,
  ) {
    this.#process = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (message: FromChild) => {
      if (message.type !== 'result') return;
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.ok) pending?.resolve(message.result);
      else pending?.reject(new Error(message.error));
    });
    child.once('exit', (code) => {
      this.#gone = true;
      for (const p of this.#pending.values()) p.reject(new Error(`the ${child.pid ?? '?'} server process exited (${code ?? 'signal'})`));
      this.#pending.clear();
    });
  }

  /**
   * Forks `child.ts` in `mode` with `--expose-gc` (TypeScript through tsx) and waits until it
   * listens (3 minutes: a loaded machine starts it slowly). `place`: mode `replica` only.
   */
  static async spawn(mode: ChildMode, lanes: number, timeoutMs = 180_000, place?: ReplicaPlace): Promise<Child> {
    const entry = fileURLToPath(new URL('./child.ts', import.meta.url));
    const env = { ...process.env };
    // The embedded store: PGlite in memory.
    delete env['DATABASE_URL'];
    // BENCH_DISPATCH_PROFILE=<folder>: a V8 CPU profile of each server process, written when it exits.
    const profile = process.env['BENCH_DISPATCH_PROFILE'];
    const args = place === undefined ? [] : [JSON.stringify(place)];
    const child = fork(entry, [mode, String(lanes), ...args], {
      execArgv: ['--expose-gc', '--import', 'tsx', ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [])],
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = new Promise<ChildReady>((resolve, reject) => {
      child.on('message', (message: FromChild) => {
        if (message.type === 'ready') resolve(message);
      });
      child.once('exit', (code) => reject(new Error(`the ${mode} process exited before it was ready (${code ?? 'signal'})`)));
    });
    try {
      return new Child(child, await withTimeout(ready, timeoutMs, `starting the ${mode} process`));
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  call<C extends ChildRequest['cmd']>(request: Extract<ChildRequest, { cmd: C }>, timeoutMs = 120_000): Promise<ChildResults[C]> {
    if (this.#gone || !this.#process.connected) return Promise.reject(new Error(`server process gone: ${request.cmd}`));
    const id = this.#nextId++;
    const result = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#process.send({ id, request } satisfies ToChild);
    });
    return withTimeout(result as Promise<ChildResults[C]>, timeoutMs, `server process: ${request.cmd}`);
  }

  /** Ends the process at once, as a crash or an operator's `kill -9` does; resolves when it has exited. */
  async kill(): Promise<void> {
    if (!this.#gone) this.#process.kill('SIGKILL');
    await this.#exited;
  }

  /** Asks the process to close, and kills it if it has not exited within `timeoutMs`. */
  async close(timeoutMs = 15_000): Promise<void> {
    if (this.#gone) return;
    await this.call({ cmd: 'close' }, timeoutMs).catch(() => undefined);
    await withTimeout(this.#exited, timeoutMs, 'server process exit').catch(() => {
      this.#process.kill('SIGKILL');
    });
  }
}
