import { describe, expect, it } from 'vitest';
import { ManifestError, UnknownModelError } from './errors.ts';
import { findModel, parseManifest } from './manifest.ts';

const HASH = 'a'.repeat(64);

function onnxModel(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'embed-1',
    name: 'Embed',
    engine: 'onnx',
    kinds: ['embed'],
    files: [
      { name: 'model.onnx', url: 'org/embed/resolve/main/model.onnx', size: 10, sha256: HASH },
      { name: 'tokenizer.json', url: 'https://models.example/tokenizer.json', size: 5, sha256: HASH },
    ],
    vramBytes: 1000,
    onnx: {
      model: 'model.onnx',
      tokenizer: 'tokenizer.json',
      backends: ['webgpu', 'wasm'],
      embedding: { dim: 4, maxTokens: 16, pooling: 'mean', normalize: true },
    },
    ...overrides,
  };
}

describe('parseManifest', () => {
  it('accepts a valid manifest, fills defaults and resolves relative URLs against the manifest URL', () => {
    const manifest = parseManifest({ version: 1, models: [onnxModel()] }, 'https://host.test/dir/manifest.json');
    const model = findModel(manifest, 'embed-1');
    expect(model.files[0]?.url).toBe('https://host.test/dir/org/embed/resolve/main/model.onnx');
    expect(model.files[1]?.url).toBe('https://models.example/tokenizer.json');
    expect(model.requiredFeatures).toEqual([]);
    expect(model.engine === 'onnx' && model.onnx.embedding?.output).toBe('last_hidden_state');
  });

  it.each([
    ['a bad hash', { files: [{ name: 'model.onnx', url: 'x', size: 1, sha256: 'XYZ' }] }, 'sha256'],
    ['a negative size', { files: [{ name: 'model.onnx', url: 'x', size: -1, sha256: HASH }] }, 'files'],
    ['an unknown engine', { engine: 'tensorflow' }, 'engine'],
    ['a path escaping the model folder', { files: [{ name: '../x.onnx', url: 'x', size: 1, sha256: HASH }] }, '..'],
    ['no job kinds', { kinds: [] }, 'kinds'],
    ['an unknown field', { surprise: true }, 'surprise'],
  ])('refuses %s with a ManifestError naming the problem', (_label, overrides, word) => {
    const attempt = () => parseManifest({ version: 1, models: [onnxModel(overrides)] });
    expect(attempt).toThrow(ManifestError);
    expect(attempt).toThrow(new RegExp(word.replace('.', '\\.')));
  });

  it('refuses a graph file that is not among the files', () => {
    const model = onnxModel();
    (model['onnx'] as Record<string, unknown>)['model'] = 'other.onnx';
    expect(() => parseManifest({ version: 1, models: [model] })).toThrow(/other\.onnx/);
  });

  it('refuses a job kind whose section is missing', () => {
    expect(() => parseManifest({ version: 1, models: [onnxModel({ kinds: ['embed', 'generate'] })] })).toThrow(/generate/);
  });

  it('refuses duplicate ids and other versions', () => {
    expect(() => parseManifest({ version: 1, models: [onnxModel(), onnxModel()] })).toThrow(/twice/);
    expect(() => parseManifest({ version: 2, models: [] })).toThrow(ManifestError);
  });
});

describe('findModel', () => {
  it('throws UnknownModelError listing the known ids', () => {
    const manifest = parseManifest({ version: 1, models: [onnxModel()] });
    const attempt = () => findModel(manifest, 'nope');
    expect(attempt).toThrow(UnknownModelError);
    expect(attempt).toThrow(/Choose one of: embed-1/);
  });
});
