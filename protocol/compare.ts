/**
 * Whether two results of one job agree, with a tolerance that fits the job kind: cosine per
 * vector for embeddings, the largest element error against the tensor's scale for raw
 * tensors, token agreement for greedy generation. Callers compare
 * only results from one engine class, where numerics are expected to match this closely.
 */
import type { JobResult, Tensor } from './jobs.ts';

/** The outcome of one comparison. */
export interface Agreement {
  readonly agree: boolean;
  /** In [0, 1] for the job kind's measure (lowest cosine, or token agreement); 0 when the shapes differ. */
  readonly score: number;
  /** Why, in words a contributor can read. */
  readonly reason: string;
}

/** Tolerances; every field has a default. */
export interface CompareOptions {
  /** Lowest cosine similarity any vector pair may have. Default 0.999. */
  readonly minCosine?: number;
  /** Lowest share of equal token positions (up to the shorter length) for greedy output. Default 1. */
  readonly minTokenAgreement?: number;
  /**
   * Later: a teacher-forced score in [0, 1] (how likely one engine finds the other's tokens),
   * asked only when plain token agreement falls short. Undefined: not available for this pair.
   */
  readonly teacherForcedScore?: (a: readonly number[], b: readonly number[]) => number | undefined;
  /** Lowest teacher-forced score that counts as agreement. Default 0.99. */
  readonly minTeacherForced?: number;
  /**
   * `infer` outputs: the largest |a − b| over a tensor's elements, as a share of its largest
   * magnitude (of either result). Default 0.01.
   */
  readonly maxTensorError?: number;
}

const DEFAULT_MIN_COSINE = 0.999;
const DEFAULT_MIN_TOKEN_AGREEMENT = 1;
const DEFAULT_MIN_TEACHER_FORCED = 0.99;
/**
 * Raw tensors are not normalized, so cosine would pass a scaled or shifted answer: each element
 * must be within 1 % of the tensor's largest magnitude. Honest float32 backends differ by about
 * 1e-6 of it (summation order); a WebGPU kernel accumulating in f16 (ε ≈ 1e-3 per step) stays
 * well under 1 %; an output perturbed by more than that, or computed from other weights, fails.
 */
const DEFAULT_MAX_TENSOR_ERROR = 0.01;

/** Cosine similarity of two equal-length vectors; NaN for a zero, non-finite or mismatched pair. */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length === 0) return Number.NaN;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? Number.NaN;
    const y = b[i] ?? Number.NaN;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  const cos = dot / Math.sqrt(na * nb);
  // Rounding can push an exact match a hair above 1.
  return Number.isFinite(cos) ? Math.min(1, Math.max(-1, cos)) : Number.NaN;
}

/** Compares vector lists pairwise; the score is the lowest cosine. */
export function compareVectors(
  a: readonly (readonly number[])[],
  b: readonly (readonly number[])[],
  minCosine = DEFAULT_MIN_COSINE,
): Agreement {
  if (a.length !== b.length) {
    return { agree: false, score: 0, reason: `The results hold ${a.length} and ${b.length} vectors; they should hold the same number.` };
  }
  let lowest = 1;
  let lowestAt = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? [];
    const y = b[i] ?? [];
    if (x.length !== y.length) {
      return { agree: false, score: 0, reason: `Vector ${i} has ${x.length} and ${y.length} dimensions; they should match.` };
    }
    const cos = cosineSimilarity(x, y);
    if (Number.isNaN(cos)) return { agree: false, score: 0, reason: `Vector ${i} is empty, zero or holds a non-number.` };
    if (cos < lowest) {
      lowest = cos;
      lowestAt = i;
    }
  }
  const score = Math.max(0, lowest);
  if (lowest >= minCosine) {
    return { agree: true, score, reason: `All ${a.length} vectors match (lowest cosine ${lowest.toFixed(6)}, need ${minCosine}).` };
  }
  return {
    agree: false,
    score,
    reason: `Vector ${lowestAt} differs: cosine ${lowest.toFixed(6)}, below the ${minCosine} two honest runs reach.`,
  };
}

/** Compares greedy token sequences: equal positions up to the shorter length, and equal length. */
export function compareTokens(a: readonly number[], b: readonly number[], options: CompareOptions = {}): Agreement {
  const need = options.minTokenAgreement ?? DEFAULT_MIN_TOKEN_AGREEMENT;
  const shorter = Math.min(a.length, b.length);
  let equal = 0;
  let firstDiff = -1;
  for (let i = 0; i < shorter; i++) {
    if (a[i] === b[i]) equal++;
    else if (firstDiff < 0) firstDiff = i;
  }
  const score = shorter === 0 ? (a.length === b.length ? 1 : 0) : equal / shorter;
  const sameLength = a.length === b.length;
  if (sameLength && score >= need) {
    return { agree: true, score, reason: `${equal} of ${shorter} tokens match (need ${(need * 100).toFixed(1)}%).` };
  }
  const tf = options.teacherForcedScore?.(a, b);
  if (tf !== undefined) {
    const tfNeed = options.minTeacherForced ?? DEFAULT_MIN_TEACHER_FORCED;
    const agree = tf >= tfNeed;
    return { agree, score: tf, reason: `Tokens differ, so they were scored teacher-forced: ${tf.toFixed(4)} (need ${tfNeed}).` };
  }
  if (!sameLength) {
    return {
      agree: false,
      score,
      reason: `The outputs have ${a.length} and ${b.length} tokens; greedy runs of one job should stop at the same place.`,
    };
  }
  return { agree: false, score, reason: `Only ${equal} of ${shorter} tokens match, first difference at position ${firstDiff}.` };
}

function compareTensors(a: Record<string, Tensor>, b: Record<string, Tensor>, maxError: number): Agreement {
  const names = Object.keys(a).sort();
  const other = Object.keys(b).sort();
  if (names.join('\n') !== other.join('\n')) {
    return { agree: false, score: 0, reason: `The outputs are named ${names.join(', ')} and ${other.join(', ')}; they should match.` };
  }
  const dims = (r: Record<string, Tensor>): string => names.map((n) => (r[n]?.dims ?? []).join('x')).join(',');
  if (dims(a) !== dims(b)) return { agree: false, score: 0, reason: `The output shapes ${dims(a)} and ${dims(b)} differ.` };
  let worst = 0;
  let worstName = '';
  for (const name of names) {
    const x = a[name]?.data ?? [];
    const y = b[name]?.data ?? [];
    const count = (a[name]?.dims ?? []).reduce((p, d) => p * d, 1);
    if (x.length !== count || y.length !== count) {
      return { agree: false, score: 0, reason: `Output ${name} holds ${x.length} and ${y.length} values; its shape holds ${count}.` };
    }
    let scale = 0;
    let error = 0;
    for (let i = 0; i < count; i++) {
      const p = x[i] ?? Number.NaN;
      const q = y[i] ?? Number.NaN;
      if (!Number.isFinite(p) || !Number.isFinite(q)) return { agree: false, score: 0, reason: `Output ${name} holds a non-finite value.` };
      scale = Math.max(scale, Math.abs(p), Math.abs(q));
      error = Math.max(error, Math.abs(p - q));
    }
    const relative = scale === 0 ? 0 : error / scale;
    if (relative >= worst) {
      worst = relative;
      worstName = name;
    }
  }
  const score = Math.max(0, 1 - worst);
  if (worst <= maxError) {
    return {
      agree: true,
      score,
      reason: `All ${names.length} outputs match (largest error ${worst.toExponential(2)} of the scale, at most ${maxError}).`,
    };
  }
  return {
    agree: false,
    score,
    reason: `Output ${worstName} differs by ${worst.toExponential(2)} of its scale, more than the ${maxError} two honest runs stay within.`,
  };
}

/** Whether two results of the same job agree. */
export function compareResults(a: JobResult, b: JobResult, options: CompareOptions = {}): Agreement {
  const minCosine = options.minCosine ?? DEFAULT_MIN_COSINE;
  if (a.kind === 'embed' && b.kind === 'embed') return compareVectors(a.embeddings, b.embeddings, minCosine);
  if (a.kind === 'infer' && b.kind === 'infer')
    return compareTensors(a.outputs, b.outputs, options.maxTensorError ?? DEFAULT_MAX_TENSOR_ERROR);
  if (a.kind === 'generate' && b.kind === 'generate') return compareTokens(a.tokens, b.tokens, options);
  // Chat results carry text only; its code points stand in for tokens.
  if (a.kind === 'chat' && b.kind === 'chat') return compareTokens(codePoints(a.text), codePoints(b.text), options);
  return { agree: false, score: 0, reason: `One result is a ${a.kind} result and the other a ${b.kind} result.` };
}

function codePoints(text: string): number[] {
  return Array.from(text, (c) => c.codePointAt(0) ?? 0);
}
