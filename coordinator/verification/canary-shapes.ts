/**
 * Canaries a device cannot tell from paid work by their shape or their timing: each is
 * matched to the size of a recent real job of its model and kind (input tokens, output
 * budget), and sent at a random moment rather than right after the job that drew it.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobResult } from '../../protocol/jobs.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Canary, CanarySource, KnownAnswer } from './canaries.ts';

/** The sizes of recent real jobs per model and kind: a ring of the last `capacity` envelopes. */
export class JobShapes {
  readonly #rings = new Map<string, { items: BillingEnvelope[]; next: number }>();
  readonly #capacity: number;
  readonly #random: () => number;

  constructor(random: () => number, capacity = 256) {
    this.#random = random;
    this.#capacity = capacity;
  }

  note(model: string, kind: JobKind, envelope: BillingEnvelope): void {
    const key = `${kind}\n${model}`;
    let ring = this.#rings.get(key);
    if (ring === undefined) {
      // Bounded: a coordinator serves a manifest's models, but a hostile id must not grow this without end.
      if (this.#rings.size >= 4_096) return;
      ring = { items: [], next: 0 };
      this.#rings.set(key, ring);
    }
    if (ring.items.length < this.#capacity) ring.items.push(envelope);
    else ring.items[ring.next] = envelope;
    ring.next = (ring.next + 1) % this.#capacity;
  }

  /** One recent real job's envelope, drawn at random; null when none was seen. */
  draw(model: string, kind: JobKind): BillingEnvelope | null {
    const items = this.#rings.get(`${kind}\n${model}`)?.items ?? [];
    return items[Math.floor(this.#random() * items.length)] ?? null;
  }
}

/**
 * Known-answer canaries shaped like real jobs: among the answers of a model and kind, those
 * that can be asked with a real job's output budget, nearest to its input size (at random
 * among the nearest few, so one size does not always give one prompt).
 */
export class ShapedCanaries implements CanarySource {
  readonly #answers: readonly KnownAnswer[];
  readonly #random: () => number;
  readonly shapes: JobShapes;

  constructor(answers: readonly KnownAnswer[], random: () => number, shapes = new JobShapes(random)) {
    this.#answers = answers;
    this.#random = random;
    this.shapes = shapes;
  }

  observe(model: string, kind: JobKind, envelope: BillingEnvelope): void {
    this.shapes.note(model, kind, envelope);
  }

  next(model: string, kind: JobKind, engineClass?: string): Canary | null {
    const fits = this.#answers.filter(
      (a) => a.request.model === model && a.request.kind === kind && (a.engineClass === undefined || a.engineClass === engineClass),
    );
    const shape = this.draw(model, kind);
    if (shape === null) return this.#pick(fits);
    const shaped = fits.flatMap((a) => {
      const c = withOutputBudget(a, shape.maxOutputTokens);
      return c === null ? [] : [c];
    });
    const pool = shaped.length > 0 ? shaped : fits;
    const distance = (c: Canary): number => Math.abs(c.expected.usage.promptTokens - shape.inputTokens);
    const nearest = [...pool].sort((a, b) => distance(a) - distance(b)).slice(0, 3);
    return this.#pick(nearest);
  }

  /** The real job shape a canary of this model and kind copies; null: none seen yet. */
  draw(model: string, kind: JobKind): BillingEnvelope | null {
    return this.shapes.draw(model, kind);
  }

  #pick(from: readonly Canary[]): Canary | null {
    const picked = from[Math.floor(this.#random() * from.length)];
    return picked === undefined ? null : { request: picked.request, expected: picked.expected };
  }
}

/**
 * The canary of `answer` asked with `maxTokens` output tokens, or null when its known answer
 * does not tell what such a run returns. Greedy decoding is a prefix of itself: a run that
 * stopped on its own returns the same for any budget at least its length, and a generation
 * budget below the answer's length returns its first tokens (chat text cannot be cut
 * without the tokenizer, so a chat answer keeps a budget its run fits in).
 */
export function withOutputBudget(answer: Canary, maxTokens: number): Canary | null {
  const { request, expected } = answer;
  if (request.kind !== 'generate' && request.kind !== 'chat') return answer;
  if (expected.kind !== 'generate' && expected.kind !== 'chat') return null;
  if (maxTokens < 1) return null;
  if (maxTokens === request.maxTokens) return answer;
  const tokens = expected.tokens ?? [];
  const stopped = expected.finishReason === 'stop';
  if (maxTokens > request.maxTokens) return stopped ? { request: { ...request, maxTokens }, expected } : null;
  if (maxTokens > tokens.length) return stopped ? { request: { ...request, maxTokens }, expected } : null;
  // The run is cut at the budget: with exactly its length it ends on the budget, not on its end token.
  if (expected.kind === 'chat')
    return maxTokens === tokens.length ? { request: { ...request, maxTokens }, expected: { ...expected, finishReason: 'length' } } : null;
  const cut: JobResult = {
    kind: 'generate',
    tokens: tokens.slice(0, maxTokens),
    finishReason: 'length',
    usage: { promptTokens: expected.usage.promptTokens, completionTokens: maxTokens },
  };
  return { request: { ...request, maxTokens }, expected: cut };
}

/** Sends canaries at random moments: each after a delay drawn uniformly in [0, `maxDelayMs`). */
export class CanaryMoments {
  readonly #maxDelayMs: number;
  readonly #random: () => number;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(maxDelayMs: number, random: () => number) {
    this.#maxDelayMs = maxDelayMs;
    this.#random = random;
  }

  /** Runs `send` now (no delay set) or at a random moment; a stopped schedule sends nothing more. */
  at(send: () => void): void {
    if (this.#maxDelayMs <= 0) return send();
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        send();
      },
      Math.floor(this.#random() * this.#maxDelayMs),
    );
    timer.unref?.();
    this.#timers.add(timer);
  }

  /** Canaries waiting for their moment. */
  get waiting(): number {
    return this.#timers.size;
  }

  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
