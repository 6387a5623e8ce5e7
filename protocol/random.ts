/**
 * mulberry32, the seeded 32-bit PRNG every part of Spinneret shares: a job's `sampling.seed`
 * must give the same tokens on any contributor (and on a verifier replaying it), and test
 * data made from a seed must be the same bytes everywhere. Integer math only.
 */

/** The raw stream: uint32 values. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Floats in [0, 1) from the same stream. */
export function seededRandom(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}
