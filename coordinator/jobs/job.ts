/**
 * One job in flight: its metadata (what the store keeps) and its event log (what the
 * requester's event stream replays). Payload and result bytes pass through, sealed; the
 * payload is kept nowhere beyond the job in flight, and a done requester job's sealed result
 * only briefly in its record ({@link StoredResult}).
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Assignment, JobEvent, WireError } from '../../protocol/wire.ts';
import type { JobRecord, JobState, StoredResult } from '../store/types.ts';

/** Receives a job's events as they happen; `end` after the last one. */
export interface JobListener {
  event(event: JobEvent): void;
  end(): void;
}

const FINAL_STATES: ReadonlySet<JobState> = new Set(['done', 'failed', 'cancelled']);

export class Job {
  readonly id: string;
  readonly apiKeyId: string;
  readonly model: string;
  readonly kind: JobKind;
  /** What its requester (or, for a check, the coordinator) agreed to pay for; usage is billed within it. */
  readonly envelope: BillingEnvelope;
  readonly createdAt: number;
  state: JobState = 'waiting';
  /** The current attempt: 1 for the first contributor, +1 per re-assignment. */
  attempt = 1;
  contributorId: string | null = null;
  /** The engine class of the current attempt, derived from the manifest when it was assigned (protocol/engine-class.ts). */
  engineClass: string | null = null;
  /** Lease of the current attempt, while one is reserved or running. */
  leaseId: string | null = null;
  /** Contributors that had an earlier attempt; a re-queued job goes to someone else. */
  readonly triedBy = new Set<string>();
  /** When the job last started waiting for a contributor, ms. */
  waitingSince: number;
  /** When it reached a final state, ms. */
  finishedAt: number | null = null;
  updatedAt: number;
  payloadBytes = 0;
  resultBytes = 0;
  promptTokens = 0;
  completionTokens = 0;
  error: WireError | null = null;
  #events: JobEvent[] = [];
  readonly #listeners = new Set<JobListener>();
  /** While set, events from this index on are kept but not delivered (see {@link holdDelivery}). */
  #heldFrom: number | null = null;
  /** {@link end} was called while delivery was held. */
  #endHeld = false;

  constructor(init: { id: string; apiKeyId: string; model: string; kind: JobKind; envelope: BillingEnvelope; now: number }) {
    this.id = init.id;
    this.apiKeyId = init.apiKeyId;
    this.model = init.model;
    this.kind = init.kind;
    this.envelope = init.envelope;
    this.createdAt = init.now;
    this.updatedAt = init.now;
    this.waitingSince = init.now;
  }

  get finished(): boolean {
    return FINAL_STATES.has(this.state);
  }

  /** Appends an event and delivers it to every subscriber (unless delivery is held). */
  emit(event: JobEvent): void {
    this.#events.push(event);
    if (this.#heldFrom !== null) return;
    for (const listener of this.#listeners) listener.event(event);
  }

  /** Ends every subscriber's stream; later subscribers get the log replayed and then the end. */
  end(): void {
    if (this.#heldFrom !== null) {
      this.#endHeld = true;
      return;
    }
    for (const listener of this.#listeners) listener.end();
    this.#listeners.clear();
  }

  /**
   * Holds back the events emitted from now on (and the end of the stream) until
   * {@link releaseDelivery}: a final result goes out only once the job's record says it is
   * done, so no requester holds an answer the store could lose (docs/protocol.md, "Surviving faults").
   */
  holdDelivery(): void {
    this.#heldFrom ??= this.#events.length;
  }

  /** Delivers what {@link holdDelivery} kept back, then the end if it came meanwhile. */
  releaseDelivery(): void {
    const from = this.#heldFrom;
    if (from === null) return;
    this.#heldFrom = null;
    for (const event of this.#events.slice(from)) for (const listener of this.#listeners) listener.event(event);
    if (this.#endHeld) {
      this.#endHeld = false;
      this.end();
    }
  }

  /** Whether events are being held back from subscribers. */
  get deliveryHeld(): boolean {
    return this.#heldFrom !== null;
  }

  /** Drops result chunks of earlier attempts: a new attempt's stream starts again at seq 0. */
  dropStaleChunks(): void {
    this.#events = this.#events.filter((event) => event.type !== 'chunk' || event.attempt === this.attempt);
  }

  /** Starts the next attempt: the job waits for a contributor again from `now`, its earlier attempts' chunks dropped. */
  requeue(now: number): void {
    this.attempt++;
    this.state = 'waiting';
    this.contributorId = null;
    this.engineClass = null;
    this.leaseId = null;
    this.waitingSince = now;
    this.dropStaleChunks();
  }

  /** Replays the events so far, then delivers new ones. Returns the unsubscribe function. */
  subscribe(listener: JobListener): () => void {
    const shown = this.#heldFrom ?? this.#events.length;
    for (const event of this.#events.slice(0, shown)) listener.event(event);
    if (this.finished && this.#heldFrom === null) {
      listener.end();
      return () => {};
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The assignment of the current attempt, once there is one. */
  get assignment(): Assignment | null {
    if (this.state !== 'queued' && this.state !== 'leased') return null;
    const last = this.#events.findLast((event) => event.type === 'assigned');
    return last?.type === 'assigned' ? last.assignment : null;
  }

  get events(): readonly JobEvent[] {
    return this.#events;
  }

  /** The sealed result chunks of the current attempt. */
  storedResult(): StoredResult {
    const chunks: StoredResult['chunks'] = [];
    for (const event of this.#events) if (event.type === 'chunk' && event.attempt === this.attempt) chunks.push(event);
    return { attempt: this.attempt, chunks };
  }

  /** The metadata the store keeps (no payload; the sealed result only when asked). */
  toRecord(options: { result?: boolean } = {}): JobRecord {
    return {
      ...(options.result === true && { result: this.storedResult() }),
      id: this.id,
      apiKeyId: this.apiKeyId,
      model: this.model,
      kind: this.kind,
      state: this.state,
      attempt: this.attempt,
      contributorId: this.contributorId,
      createdAt: this.createdAt,
      updatedAt: this.updatedAt,
      payloadBytes: this.payloadBytes,
      resultBytes: this.resultBytes,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      error: this.error === null ? null : `${this.error.code}: ${this.error.message}`,
    };
  }
}
