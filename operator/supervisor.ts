/**
 * Runs the parts of a network as child processes and keeps them up: a part that exits on its
 * own is reported (its exit code or signal, how often it restarted) and started again after a
 * back-off, while the others keep running. Each child's stdout and stderr lines pass through
 * to ours. `stop()` sends SIGTERM to every part (they drain), waits, then SIGKILLs stragglers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger as Pino } from 'pino';

export interface PartSpec {
  name: string;
  command: string;
  args: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** GET until it answers 2xx before the next parts start; and after each restart, for the log. */
  readyUrl?: string;
}

export interface SupervisorOptions {
  log: Pino;
  /** First restart delay, ms; doubles up to `maxBackoffMs`, back to the first after a minute up. Default 500. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How long a part may drain on stop before SIGKILL, ms. Default 40 000. */
  stopTimeoutMs?: number;
  /** How long `start` waits for a part's `readyUrl`, ms. Default 180 000. */
  readyTimeoutMs?: number;
  /** Told when a part cannot be restarted (it refused its configuration). */
  onFatal?: (reason: string) => void;
}

/** Set in each part's environment: the supervisor's pid, so a part outlives it by at most a second. */
export const SUPERVISOR_PID_ENV = 'SPINNERET_SUPERVISOR_PID';

/**
 * In a part: calls `stop` once when the supervisor that started it is gone (killed with
 * SIGKILL, say), so no part is left running alone. Does nothing outside a supervisor.
 */
export function stopWithSupervisor(stop: () => void): void {
  const pid = Number(process.env[SUPERVISOR_PID_ENV] ?? '');
  if (!Number.isInteger(pid) || pid <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid !== pid) {
      clearInterval(timer);
      stop();
    }
  }, 1_000);
  timer.unref();
}

/** The exit code of a part that refused its configuration (EX_CONFIG): restarting cannot help. */
export const EXIT_CONFIG = 78;

interface Running {
  spec: PartSpec;
  /** Why it will not be restarted. */
  fatal: string | null;
  child: ChildProcess | null;
  restarts: number;
  startedAt: number;
  delay: number;
  exited: Promise<void>;
}

export class Supervisor {
  readonly #parts = new Map<string, Running>();
  #stopping = false;
  readonly #o: Required<SupervisorOptions>;

  constructor(options: SupervisorOptions) {
    this.#o = {
      backoffMs: 500,
      maxBackoffMs: 15_000,
      stopTimeoutMs: 40_000,
      readyTimeoutMs: 180_000,
      onFatal: () => undefined,
      ...options,
    };
  }

  /** Starts the parts in order, each after the previous one is ready. */
  async start(specs: readonly PartSpec[]): Promise<void> {
    for (const spec of specs) {
      if (this.#stopping) return;
      const part: Running = {
        spec,
        fatal: null,
        child: null,
        restarts: 0,
        startedAt: 0,
        delay: this.#o.backoffMs,
        exited: Promise.resolve(),
      };
      this.#parts.set(spec.name, part);
      this.#spawn(part);
      if (spec.readyUrl !== undefined) await this.#waitReady(spec);
    }
  }

  /** The pid of a running part (tests kill it). */
  pid(name: string): number | undefined {
    return this.#parts.get(name)?.child?.pid;
  }

  #spawn(part: Running): void {
    const { spec, log } = { spec: part.spec, log: this.#o.log };
    const child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env, [SUPERVISOR_PID_ENV]: String(process.pid) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    part.child = child;
    part.startedAt = Date.now();
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${line}\n`));
    }
    log.info({ part: spec.name, childPid: child.pid, restarts: part.restarts }, 'part started');
    part.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        part.child = null;
        resolve();
        if (this.#stopping) {
          log.info({ part: spec.name, code, signal }, 'part stopped');
          return;
        }
        if (code === EXIT_CONFIG) {
          part.fatal = `${spec.name} refused its configuration (exit ${EXIT_CONFIG}); see its message above`;
          log.error({ part: spec.name, code }, 'part refused its configuration; not restarting it');
          this.#o.onFatal?.(part.fatal);
          return;
        }
        const upMs = Date.now() - part.startedAt;
        if (upMs > 60_000) part.delay = this.#o.backoffMs;
        log.error({ part: spec.name, code, signal, upMs, restarts: part.restarts, restartInMs: part.delay }, 'part exited; restarting it');
        const delay = part.delay;
        part.delay = Math.min(part.delay * 2, this.#o.maxBackoffMs);
        setTimeout(() => {
          if (this.#stopping) return;
          part.restarts++;
          this.#spawn(part);
          if (spec.readyUrl !== undefined) {
            this.#waitReady(spec).then(
              () => log.info({ part: spec.name, restarts: part.restarts }, 'part ready again'),
              () => undefined,
            );
          }
        }, delay).unref();
      });
    });
  }

  async #waitReady(spec: PartSpec): Promise<void> {
    const until = Date.now() + this.#o.readyTimeoutMs;
    while (!this.#stopping) {
      const fatal = this.#parts.get(spec.name)?.fatal;
      if (fatal !== null && fatal !== undefined) throw new Error(fatal);
      try {
        const res = await fetch(spec.readyUrl ?? '', { signal: AbortSignal.timeout(2_000) });
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > until) throw new Error(`${spec.name} was not ready at ${spec.readyUrl} within ${this.#o.readyTimeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** SIGTERM to every part, in reverse order of start; SIGKILL to any still running after the timeout. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const parts = [...this.#parts.values()].reverse();
    for (const part of parts) part.child?.kill('SIGTERM');
    const all = Promise.all(parts.map((p) => p.exited));
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.#o.stopTimeoutMs).unref());
    if ((await Promise.race([all, timer])) === 'timeout') {
      for (const part of parts) {
        if (part.child !== null) {
          this.#o.log.warn({ part: part.spec.name }, 'part did not stop in time; killing it');
          part.child.kill('SIGKILL');
        }
      }
      await all;
    }
  }
}
