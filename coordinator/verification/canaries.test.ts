import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../protocol/random.ts';
import { CanaryDataError, KnownAnswerCanaries } from './canaries.ts';

const usage = { promptTokens: 2, completionTokens: 0 };
const data = [
  { request: { kind: 'embed', model: 'm', inputs: ['a'] }, expected: { kind: 'embed', embeddings: [[1, 0]], usage } },
  { request: { kind: 'embed', model: 'm', inputs: ['b'] }, expected: { kind: 'embed', embeddings: [[0, 1]], usage } },
  {
    request: { kind: 'generate', model: 'm', prompt: 'hi', maxTokens: 4 },
    expected: { kind: 'generate', tokens: [1, 2], finishReason: 'stop', usage },
    engineClass: 'webllm-q4',
  },
];

describe('KnownAnswerCanaries', () => {
  it('draws only pairs of the model, kind and engine class, in a seeded order', () => {
    const source = new KnownAnswerCanaries(data, seededRandom(3));
    const inputs = Array.from({ length: 40 }, () => {
      const c = source.next('m', 'embed');
      return c?.request.kind === 'embed' ? c.request.inputs[0] : undefined;
    });
    expect(new Set(inputs)).toEqual(new Set(['a', 'b']));
    expect(source.next('other', 'embed')).toBeNull();
    expect(source.next('m', 'generate', 'onnx')).toBeNull();
    expect(source.next('m', 'generate', 'webllm-q4')?.expected).toMatchObject({ tokens: [1, 2] });
    expect(source.count('m', 'embed')).toBe(2);
  });

  it('fills request defaults and rejects malformed data', () => {
    const g = new KnownAnswerCanaries(data, seededRandom(1)).next('m', 'generate', 'webllm-q4');
    expect(g?.request).toMatchObject({ sampling: { temperature: 0 } });
    expect(() => new KnownAnswerCanaries([{ request: { kind: 'embed', model: 'm' }, expected: {} }], seededRandom(1))).toThrow(
      CanaryDataError,
    );
    expect(() => new KnownAnswerCanaries([{ request: data[0]?.request, expected: { kind: 'chat' } }], seededRandom(1))).toThrow(
      /expected embed/,
    );
  });
});
