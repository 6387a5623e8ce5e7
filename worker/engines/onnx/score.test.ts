import * as ortNode from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceDecoderForward, referenceGreedy } from '../../../modelhost/reference.ts';
import { testModels } from '../../../modelhost/models/index.ts';
import { OrtDecoder } from './decoder.ts';
import { topK } from './loaded.ts';
import type { OrtModule } from './ort.ts';

// onnxruntime-node implements the same API as onnxruntime-web (onnxruntime-common).
const ort = ortNode as unknown as OrtModule;

describe('teacher-forced scoring', () => {
  it('topK ranks the largest values first, lower index first on ties', () => {
    expect(topK(Float32Array.from([0.1, 3, -2, 3, 7]), 3)).toEqual([4, 1, 3]);
    expect(topK(Float32Array.from([1, 2]), 5)).toEqual([1, 0]);
  });

  it('one pass over prompt + output gives the float64 reference logits at every position', async () => {
    const { decoder } = testModels();
    const spec = decoder.entry.onnx.decoder;
    if (spec === undefined) throw new Error('no decoder spec');
    const bytes = decoder.files.get(decoder.entry.onnx.model);
    if (bytes === undefined) throw new Error('no graph file');
    const session = await ort.InferenceSession.create(bytes);
    const prompt = decoderTokenizer().encode(DECODER_TEST_PROMPTS[0] ?? '').ids;
    const output = referenceGreedy(prompt, 8, spec.eosTokenIds).tokens;
    const sequence = [...prompt, ...output];
    const { logits, cache } = await new OrtDecoder(ort, session, spec).all(sequence);
    new OrtDecoder(ort, session, spec).release(cache);
    const reference = referenceDecoderForward(sequence);
    expect(logits.length).toBe(sequence.length * spec.vocabSize);
    let worst = 0;
    reference.forEach((row, p) => row.forEach((x, t) => (worst = Math.max(worst, Math.abs(x - (logits[p * spec.vocabSize + t] ?? NaN))))));
    expect(worst).toBeLessThan(1e-3);
    // The greedy output is the top-1 token at each of its positions.
    output.forEach((token, i) => {
      const at = prompt.length - 1 + i;
      expect(topK(logits.subarray(at * spec.vocabSize, (at + 1) * spec.vocabSize), 1)).toEqual([token]);
    });
    await session.release();
  });
});
