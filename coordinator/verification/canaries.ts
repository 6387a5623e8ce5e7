/**
 * Known-answer jobs. The coordinator sends them as a requester would, sealed like any other
 * job (the caller seals), so a contributor cannot tell them from paid work.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobRequest, JobResult } from '../../protocol/jobs.ts';
import { parseJobRequest } from '../../protocol/jobs.ts';
import type { JobKind } from '../../protocol/manifest.ts';

/** A job and the answer an honest contributor gives. */
export interface Canary {
  readonly request: JobRequest;
  readonly expected: JobResult;
}

/** Where canaries come from. */
export interface CanarySource {
  /** A canary for this model and kind (for `engineClass` when given), or null when there is none. */
  next(model: string, kind: JobKind, engineClass?: string): Canary | null;
  /** A real job of this model and kind ran with this envelope: canaries may copy its size (canary-shapes.ts). */
  observe?(model: string, kind: JobKind, envelope: BillingEnvelope): void;
}

/** One known-answer pair as data. */
export interface KnownAnswer extends Canary {
  /** The engine class the answer was computed on; undefined: valid for every class (embeddings within tolerance). */
  readonly engineClass?: string;
}

/** The data file's entries are malformed. */
export class CanaryDataError extends Error {
  override readonly name = 'CanaryDataError';
}

/**
 * Draws from a fixed set of known-answer pairs, at random (seeded) among those that fit, so
 * the order does not give canaries away.
 */
export class KnownAnswerCanaries implements CanarySource {
  readonly #answers: readonly KnownAnswer[];
  readonly #random: () => number;

  /** `data` is validated: each request must parse and its answer must be of the request's kind. */
  constructor(data: readonly unknown[], random: () => number) {
    this.#answers = data.map((entry, i) => toKnownAnswer(entry, i));
    this.#random = random;
  }

  /** The validated pairs. */
  get answers(): readonly KnownAnswer[] {
    return this.#answers;
  }

  next(model: string, kind: JobKind, engineClass?: string): Canary | null {
    const fits = this.#answers.filter(
      (a) => a.request.model === model && a.request.kind === kind && (a.engineClass === undefined || a.engineClass === engineClass),
    );
    const picked = fits[Math.floor(this.#random() * fits.length)];
    return picked === undefined ? null : { request: picked.request, expected: picked.expected };
  }

  /** How many pairs fit a model and kind; a low count means contributors could learn them. */
  count(model: string, kind: JobKind): number {
    return this.#answers.filter((a) => a.request.model === model && a.request.kind === kind).length;
  }
}

function toKnownAnswer(entry: unknown, index: number): KnownAnswer {
  if (typeof entry !== 'object' || entry === null)
    throw new CanaryDataError(`Canary ${index} is not an object; give { request, expected }.`);
  const { request, expected, engineClass } = entry as Record<string, unknown>;
  let parsed: JobRequest;
  try {
    parsed = parseJobRequest(request);
  } catch (err) {
    throw new CanaryDataError(`Canary ${index} has a malformed request: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof expected !== 'object' || expected === null || (expected as { kind?: unknown }).kind !== parsed.kind) {
    throw new CanaryDataError(`Canary ${index} needs an expected ${parsed.kind} result.`);
  }
  if (engineClass !== undefined && typeof engineClass !== 'string')
    throw new CanaryDataError(`Canary ${index} has a non-string engineClass.`);
  // The expected result is trusted data from the operator; only its kind is checked here.
  const answer = expected as JobResult;
  return engineClass === undefined ? { request: parsed, expected: answer } : { request: parsed, expected: answer, engineClass };
}
