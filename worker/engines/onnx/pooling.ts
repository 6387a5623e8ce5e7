/** Sentence embeddings from token states: masked mean or CLS pooling, then L2 normalization. */

/**
 * @param hidden `[batch, seq, dim]` row-major
 * @param mask `[batch, seq]`, 1 for real tokens and 0 for padding
 */
export function meanPool(hidden: Float32Array, mask: ArrayLike<number>, batch: number, seq: number, dim: number): Float64Array[] {
  const out: Float64Array[] = [];
  for (let b = 0; b < batch; b++) {
    const sum = new Float64Array(dim);
    let count = 0;
    for (let s = 0; s < seq; s++) {
      if ((mask[b * seq + s] ?? 0) === 0) continue;
      count++;
      const base = (b * seq + s) * dim;
      for (let d = 0; d < dim; d++) sum[d] = (sum[d] ?? 0) + (hidden[base + d] ?? 0);
    }
    for (let d = 0; d < dim; d++) sum[d] = (sum[d] ?? 0) / Math.max(count, 1);
    out.push(sum);
  }
  return out;
}

export function l2Normalize(vector: Float64Array): Float64Array {
  let norm = 0;
  for (const x of vector) norm += x * x;
  norm = Math.sqrt(norm);
  // A zero vector stays zero rather than becoming NaN.
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

/** The first token's state of each sequence (`[CLS]` / `<s>`), as CLS-pooled models (bge) take it. */
export function clsPool(hidden: Float32Array, batch: number, seq: number, dim: number): Float64Array[] {
  const out: Float64Array[] = [];
  for (let b = 0; b < batch; b++) out.push(Float64Array.from(hidden.subarray(b * seq * dim, b * seq * dim + dim)));
  return out;
}
