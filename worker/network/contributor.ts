/**
 * The contributor loop: one connection to the coordinator, the handshake (challenge → signed
 * hello → welcome → capabilities → lease), and up to `slots` jobs at a time, each re-leased
 * when it ends. See docs/protocol.md for the messages. What the device offers and which leased
 * jobs it takes are in ./offer.ts, the `status` message in ./status-reports.ts, the options in
 * ./contributor-options.ts.
 */
import { serializeError } from '../../protocol/errors.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import { PROTOCOL_VERSION, type ContributorMessage, type CoordinatorMessage } from '../../protocol/wire.ts';
import { Gate } from '../controls/gate.ts';
import { PaceMeter, type JobSpan } from '../controls/pace.ts';
import { parseControls, parseSignals, type Controls, type Signals } from '../controls/rules.ts';
import type { BenchScore } from './capabilities.ts';
import { Connection, systemClock, type Clock, type CloseInfo } from './connection.ts';
import type { ContributorOptions, ContributorRuntime } from './contributor-options.ts';
import { answerChallenge } from './identity.ts';
import { runJob, type JobMessage } from './job.ts';
import { Offer } from './offer.ts';
import { RunningJobs } from './running-jobs.ts';
import { watchRetiredGpu } from './gpu-retired.ts';
import { closeOutcome, Session } from './session.ts';
import { SessionToken } from './session-token.ts';
import { checkSlots } from './slots.ts';
import type { ContributorState, ContributorStatus } from './status.ts';
import { StatusReports } from './status-reports.ts';

export type { ContributorOptions, ContributorRuntime, ContributorState, ContributorStatus };

/** Leases jobs from the coordinator and runs them on the runtime. */
export class Contributor {
  readonly #options: ContributorOptions;
  readonly #clock: Clock;
  readonly #listeners = new Set<(status: ContributorStatus) => void>();
  readonly #jobs: RunningJobs;
  #connection: Connection | null = null;
  #session: Session | null = null;
  #slots: number;
  readonly #gate: Gate;
  readonly #pace = new PaceMeter();
  #ownerMessage: { text: string; at: number } | null = null;
  #device: ContributorStatus['device'] = { losses: 0, lastLoss: null };
  readonly #offer: Offer;
  readonly #statusReports = new StatusReports();
  /** Set from the moment stop() is called: no more slots are offered. */
  #leaving = false;
  #stopping: Promise<void> | null = null;
  #failing = false;
  #lastError: string | null = null;
  #contributorId: string | null = null;
  #nextAttemptAt: number | null = null;
  #bench: BenchScore | undefined;
  readonly #token: SessionToken;

  constructor(options: ContributorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#jobs = new RunningJobs(this.#clock, (span) => this.#jobEnded(span));
    this.#slots = checkSlots(options.slots ?? 1);
    this.#offer = new Offer(options.runtime);
    const controls = parseControls({ ...options.controls, ...(options.consent !== undefined && { consent: [...options.consent] }) });
    this.#gate = new Gate(
      { clock: this.#clock, controls, signals: parseSignals(options.signals ?? {}), remotePaused: options.remotePaused ?? false },
      () => this.#verdictChanged(),
    );
    this.#bench = options.bench;
    this.#token = new SessionToken(options.session);
    options.runtime.onLoadingChange?.(() => this.#emit());
    options.runtime.onDeviceLost?.((report) => {
      this.#device = { losses: report.deviceLosses, lastLoss: report.lastDeviceLoss };
      this.#emit();
    });
    // A GPU the runtime gave up on: capabilities without it, and no slots when no model runs without it (gpu-retired.ts).
    watchRetiredGpu(options.runtime, (retired) => {
      this.#device = { ...this.#device, retired };
      this.#gate.setDeviceUnusable(retired.wasmModels === 0);
      this.announce();
      this.#emit();
    });
  }

  /** Connects and starts taking jobs; does nothing when already started. */
  start(): void {
    if (this.#connection !== null) return;
    const o = this.#options;
    this.#connection = new Connection(
      { url: o.coordinatorUrl, webSocket: o.webSocket, clock: this.#clock, random: o.random, backoff: o.backoff },
      {
        onOpen: () => this.#onOpen(),
        onMessage: (message) => this.#onMessage(message),
        onInvalid: (error) => this.#note(`The coordinator sent a message this worker cannot read: ${error.message}`),
        onClose: (info) => this.#onClose(info),
        onError: (err) => this.#note(`Internal error: ${serializeError(err).message}`),
      },
    );
    this.#pace.begin(this.#clock.now());
    this.#gate.start();
    this.#connection.start();
    this.#emit();
  }

  /**
   * Stops taking jobs and closes. With `drain`, running jobs finish and send their results
   * first; without, they are aborted and reported as failed (`ABORTED`) so they are re-queued at once.
   * A call while stopping returns the first call's promise.
   */
  stop(options: { drain: boolean }): Promise<void> {
    if (this.#connection === null) return Promise.resolve();
    this.#leaving = true;
    this.#stopping ??= this.#stop(options.drain);
    return this.#stopping;
  }

  async #stop(drain: boolean): Promise<void> {
    this.#lease();
    this.#emit();
    if (!drain) {
      this.#jobs.abortAll(', stopped by the contributor,', (jobId, leaseId) => {
        const error = { code: 'ABORTED', message: 'The contributor stopped before the job ended.' } as const;
        this.#send({ v: PROTOCOL_VERSION, type: 'fail', jobId, leaseId, error });
      });
    }
    await this.#jobs.settled();
    this.#endSession();
    this.#connection?.stop();
    this.#connection = null;
    this.#stopping = null;
    this.#leaving = false;
    this.#nextAttemptAt = null;
    this.#gate.stop();
    this.#emit();
  }

  /** Sets how many jobs may run at once (0–64); running jobs above the new number finish. */
  setSlots(slots: number): void {
    this.#slots = checkSlots(slots);
    this.#lease();
    this.#emit();
  }

  /** Sets the job kinds the owner allows, and tells the coordinator. */
  setConsent(kinds: readonly JobKind[]): void {
    this.setControls({ consent: [...kinds] });
  }

  /**
   * Changes the owner's rules (a partial update). New consent or caps are announced to the
   * coordinator; a pause takes effect for new jobs at once, and a running job finishes.
   */
  setControls(update: Partial<Controls>): Controls {
    const before = this.#gate.controls;
    const controls = parseControls(update, before);
    this.#gate.setControls(controls);
    const offerChanged =
      before.consent.join() !== controls.consent.join() ||
      before.maxDownloadMiB !== controls.maxDownloadMiB ||
      before.maxVramMiB !== controls.maxVramMiB;
    if (offerChanged) this.announce();
    this.#lease();
    this.#emit();
    return controls;
  }

  controls(): Controls {
    return this.#gate.controls;
  }

  /** What the page knows now (a partial update): visibility, battery, idle. */
  setSignals(update: Partial<Signals>): void {
    this.#gate.setSignals(parseSignals(update, this.#gate.signals));
    this.#sendStatus();
    this.#emit();
  }

  /**
   * Uses a new session token (a wallet proven, or disconnected: undefined) from now on. The
   * coordinator reads `hello.session` once per connection, so a connected worker says hello again
   * on a fresh socket: it stops taking jobs, lets the running ones finish and send their results,
   * then reconnects at once. Jobs that finish after the new hello are credited to the new wallet.
   */
  setSession(token: string | undefined): void {
    if (!this.#token.set(token) || !this.#stale()) return;
    this.#lease();
    this.#renewIfIdle();
    this.#emit();
  }

  /** The socket's hello carried another token than the one in force. */
  #stale(): boolean {
    return this.#token.stale(this.#session?.welcomed === true);
  }

  #renewIfIdle(): void {
    if (!this.#stale() || this.#jobs.size > 0 || this.#leaving || this.#connection === null) return;
    this.#token.renew();
    this.#connection.delayNextConnect(0);
    this.#connection.reconnect('new session');
  }

  /** Sends the capabilities again: call after a model was loaded, cached or evicted, or with a new benchmark. */
  announce(update: { bench?: BenchScore } = {}): void {
    if (update.bench !== undefined) this.#bench = update.bench;
    if (this.#session?.welcomed) this.#announce(this.#session);
  }

  status(): ContributorStatus {
    const verdict = this.#gate.verdict();
    const now = this.#clock.now();
    const resumeAt = verdict.pausedBy === 'duty-cycle' || verdict.pausedBy === 'schedule' ? verdict.recheckAt : null;
    return {
      state: this.#state(),
      lastError: this.#lastError,
      contributorId: this.#contributorId,
      jobsDone: this.#jobs.counts.done,
      jobsFailed: this.#jobs.counts.failed,
      jobsStopped: this.#jobs.counts.stopped,
      running: this.#jobs.size,
      slots: this.#slots,
      consent: [...this.#gate.controls.consent],
      lastJobAt: this.#jobs.lastEndedAt,
      reconnectAttempts: this.#connection?.attempts ?? 0,
      nextAttemptAt: this.#nextAttemptAt,
      pausedBy: verdict.pausedBy,
      resumeAt,
      unusable: verdict.unusable.map((u) => ({ ...u })),
      ownerMessage: this.#ownerMessage,
      visibility: this.#gate.signals.visibility,
      pace: this.#connection === null ? undefined : this.#pace.pace(now, this.#jobs.startTimes()),
      recentJobs: this.#pace.spans(),
      device: { ...this.#device },
      loading: this.#options.runtime.loadingModels?.() ?? [],
    };
  }

  /** Calls `listener` with the new status after every change; returns the unsubscribe function. */
  onStatus(listener: (status: ContributorStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #state(): ContributorState {
    if (this.#connection === null) return 'idle';
    if (this.#session?.welcomed) return this.#jobs.size > 0 ? 'working' : this.#free() === 0 ? 'paused' : 'connected';
    return this.#failing ? 'error' : 'connecting';
  }

  #onOpen(): void {
    this.#session = new Session(this.#clock, this.#options.handshakeTimeoutMs ?? 15_000, {
      onStalled: () => {
        this.#failing = true;
        this.#lastError = 'The coordinator did not finish the handshake; reconnecting.';
        this.#connection?.reconnect('handshake timed out');
      },
      onPing: (t) => this.#send({ v: PROTOCOL_VERSION, type: 'ping', t }),
      onSilent: () => {
        this.#lastError = 'The coordinator stopped answering; reconnecting.';
        this.#connection?.reconnect('coordinator silent');
      },
    });
    this.#nextAttemptAt = null;
    this.#emit();
  }

  #onMessage(message: CoordinatorMessage): void {
    const session = this.#session;
    if (session === null) return;
    session.heard();
    switch (message.type) {
      case 'challenge':
        session.clockOffset = message.serverTime - this.#clock.now();
        this.#hello(session, message.nonce).catch((err: unknown) => this.#note(`Could not sign the hello: ${serializeError(err).message}`));
        return;
      case 'welcome':
        session.welcome(message.heartbeatMs);
        this.#failing = false;
        this.#contributorId = message.contributorId;
        if (this.#connection !== null && message.maxMessageBytes > 0) this.#connection.maxMessageBytes = message.maxMessageBytes;
        // The token changed during the handshake: say hello again before taking any job.
        if (this.#stale()) return this.#renewIfIdle();
        this.#announce(session);
        this.#emit();
        return;
      case 'job':
        this.#accept(session, message);
        return;
      case 'cancel':
        this.#jobs.abort(message.jobId, ', cancelled by the coordinator,', message.leaseId);
        return;
      case 'drain':
        session.draining = true;
        this.#connection?.delayNextConnect(message.reconnectAfterMs);
        this.#emit();
        return;
      case 'error':
        this.#lastError = `The coordinator refused a message (${message.error.code}): ${message.error.message}`;
        session.refused ||= message.fatal;
        this.#failing ||= message.fatal;
        // An error about a job (late chunk, lease gone) means the coordinator no longer takes its result.
        if (message.jobId !== undefined) this.#jobs.abort(message.jobId, ', refused by the coordinator,');
        this.#emit();
        return;
      case 'control':
        if (message.action === 'message') {
          this.#ownerMessage = { text: message.text ?? '', at: this.#clock.now() };
          this.#emit();
          return;
        }
        this.#options.onRemotePause?.(message.action === 'pause');
        this.#gate.setRemotePaused(message.action === 'pause');
        return;
      case 'self-test':
        // A first failed check on this model: the coordinator moved the device off it; the owner sees why.
        this.#ownerMessage = { text: message.reason, at: this.#clock.now() };
        this.#emit();
        return;
      case 'ack':
      case 'pong':
        return;
    }
  }

  async #hello(session: Session, nonce: string): Promise<void> {
    const proof = await answerChallenge(this.#options.identity, nonce);
    const { client } = this.#options;
    if (session !== this.#session) return;
    const token = this.#token.forHello();
    this.#send({ v: PROTOCOL_VERSION, type: 'hello', ...proof, client, ...(token && { session: token }) });
  }

  /** Sends the capabilities (with `ifChanged`, only when the model states changed, e.g. after a job loaded one). */
  #announce(session: Session, ifChanged = false): void {
    this.#offer
      .describe(this.#gate.controls, this.#bench)
      .then((described) => {
        if (session !== this.#session || (ifChanged && !this.#offer.changed(described))) return;
        this.#offer.sent(described);
        this.#send({ ...described.capabilities, visibility: this.#gate.signals.visibility });
        this.#lease();
        this.#sendStatus(true);
      })
      .catch((err: unknown) => this.#note(`Could not list this device's capabilities: ${serializeError(err).message}`));
  }

  /**
   * Free slots offered to the coordinator: 0 while draining, stopping, paused by a rule, or about
   * to say hello again with a new session (unless `forJobInFlight`: a job the coordinator sent
   * before the slots were withdrawn still runs).
   */
  #free(forJobInFlight = false): number {
    const closed =
      this.#session?.draining === true || this.#leaving || this.#gate.verdict().pausedBy !== null || (!forJobInFlight && this.#stale());
    return closed ? 0 : Math.max(0, this.#slots - this.#jobs.size);
  }

  #lease(): void {
    if (this.#session?.welcomed) this.#send({ v: PROTOCOL_VERSION, type: 'lease', slots: this.#free() });
  }

  #accept(session: Session, job: JobMessage): void {
    if (!session.welcomed || this.#jobs.has(job.leaseId)) return;
    const refusal = this.#offer.refusal(job, this.#free(true), this.#gate.controls);
    if (refusal !== null) {
      this.#send({ v: PROTOCOL_VERSION, type: 'fail', jobId: job.jobId, leaseId: job.leaseId, error: refusal });
      this.#lease();
      return;
    }
    const context = { runtime: this.#options.runtime, hpke: this.#options.identity.hpke, send: (m: ContributorMessage) => this.#send(m) };
    this.#jobs.start(job.jobId, job.leaseId, session.toLocal(job.deadline), (signal) => runJob(job, context, signal));
    this.#emit();
  }

  #onClose(info: CloseInfo): void {
    const session = this.#session;
    const renewing = this.#token.closedToRenew();
    this.#endSession();
    const outcome = closeOutcome(info, session, renewing, this.#failing);
    this.#failing = outcome.failing;
    this.#lastError = outcome.lastError ?? this.#lastError;
    if (this.#leaving) this.#connection?.stop();
    this.#nextAttemptAt = info.retryInMs === null || this.#leaving ? null : this.#clock.now() + info.retryInMs;
    this.#emit();
  }

  /** Forgets the session; its running jobs are aborted (the coordinator re-queues their leases). */
  #endSession(): void {
    this.#session?.end();
    this.#session = null;
    this.#jobs.abortAll(', cut off by the lost connection,');
  }

  #jobEnded(span: JobSpan): void {
    this.#pace.record(span);
    this.#renewIfIdle();
    if (this.#session?.welcomed) this.#announce(this.#session, true);
    // A duty-cycle rest that starts now changes the verdict, which leases and reports by itself.
    if (!this.#gate.jobEnded(span)) {
      this.#lease();
      this.#sendStatus();
      this.#emit();
    }
  }

  #verdictChanged(): void {
    this.#lease();
    this.#sendStatus();
    this.#emit();
  }

  /** Tells the coordinator what the tab can do: when `force`d, when it changed, or with a fresh pace now and then. */
  #sendStatus(force = false): void {
    if (this.#session?.welcomed !== true) return;
    const now = this.#clock.now();
    const says = {
      visibility: this.#gate.signals.visibility,
      pausedBy: this.#gate.verdict().pausedBy,
      label: this.#options.label?.slice(0, 64),
    };
    const message = this.#statusReports.next(now, says, () => this.#pace.pace(now, this.#jobs.startTimes()), force);
    if (message !== null) this.#send(message);
  }

  #send(message: ContributorMessage): ReturnType<Connection['send']> {
    return this.#connection?.send(message) ?? 'closed';
  }

  #note(error: string): void {
    this.#lastError = error;
    this.#emit();
  }

  #emit(): void {
    const status = this.status();
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch {
        // A broken listener must not stop the job loop.
      }
    }
  }
}
