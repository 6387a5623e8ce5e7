/**
 * Graphs published with external data (`onnx/model.onnx` + `onnx/model.onnx_data`, as exports
 * over protobuf's 2 GB limit are): the engine hands the data file to the session by the path
 * the graph names it with, and the model runs exactly as the same model in one file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ortNode from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadOnnxNode } from '../../../operator/known-answers/onnx-node.ts';
import { parseManifest, type OnnxModel } from '../../../protocol/manifest.ts';
import { STANDIN_IDS, standinModels, testModels, type BuiltModel } from '../../../modelhost/models/index.ts';
import { largestInitializerBytes, withExternalData } from '../../../modelhost/models/onnx-graph.ts';
import { buildManifest } from '../../../modelhost/server.ts';
import type { EngineContext } from '../types.ts';
import { OnnxEngine } from './engine.ts';
import { ExternalDataError, externalReferences } from './external-data.ts';
import { createSession, externalDataFiles, type OrtModule } from './ort.ts';

const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

function engineFor(model: BuiltModel<unknown>): OnnxEngine {
  const ctx: EngineContext = {
    store: {
      getFile: async (file) => {
        const bytes = model.files.get(file.name);
        if (bytes === undefined) throw new Error(`no ${file.name}`);
        return bytes;
      },
      has: async () => true,
      evict: async () => 0,
    },
    gpu: () => null,
    device: async () => null,
  };
  return new OnnxEngine(ctx, { loadOrt: async () => ort });
}

function entryOf(model: BuiltModel<unknown>): OnnxModel {
  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://host.invalid', testModels(), () => [], [model]))));
  const entry = manifest.models.find((m) => m.id === model.id);
  if (entry?.engine !== 'onnx') throw new Error('no entry');
  return entry;
}

/** `model` with its graph split into the graph and `<graph>_data`, under a new id. */
function splitModel(model: BuiltModel<unknown>, graphName: string): { split: BuiltModel<unknown>; dataBytes: number } {
  const bytes = model.files.get(graphName);
  if (bytes === undefined) throw new Error(`no ${graphName}`);
  const name = graphName.slice(graphName.lastIndexOf('/') + 1);
  const { graph, data } = withExternalData(bytes, `${name}_data`);
  const files = new Map(model.files);
  files.set(graphName, graph);
  files.set(`${graphName}_data`, data);
  const id = `${model.id}-external`;
  return { split: { ...model, id, files, entry: { ...model.entry, id } }, dataBytes: data.length };
}

function standin(id: string): BuiltModel<unknown> {
  const found = standinModels().find((m) => m.id === id);
  if (found === undefined) throw new Error(`no ${id}`);
  return found;
}

describe('external data', () => {
  it('names each data file of a graph by the path the graph uses, parts in order, and nothing else', () => {
    const b = new Uint8Array(1);
    const files = new Map([
      ['onnx/model_q4f16.onnx', b],
      ['onnx/model_q4f16.onnx_data_1', b],
      ['onnx/model_q4f16.onnx_data', b],
      ['onnx/model.onnx_data', b],
      ['onnx/model_q4f16.onnx_database', b],
      ['tokenizer.json', b],
    ]);
    expect(externalDataFiles('onnx/model_q4f16.onnx', files).map((f) => f.path)).toEqual([
      'model_q4f16.onnx_data',
      'model_q4f16.onnx_data_1',
    ]);
    expect(externalDataFiles('model.onnx', new Map([['model.onnx_data', b]])).map((f) => f.path)).toEqual(['model.onnx_data']);
  });

  it('runs an encoder whose weights are in onnx/model.onnx_data exactly as the one-file build', async () => {
    const whole = standin(STANDIN_IDS.encoder);
    const { split, dataBytes } = splitModel(whole, 'onnx/model.onnx');
    const graph = split.files.get('onnx/model.onnx') ?? new Uint8Array();
    // Most of the bytes moved, and the graph's declared sizes still give the largest initializer.
    expect(graph.length).toBeLessThan((whole.files.get('onnx/model.onnx')?.length ?? 0) / 2);
    expect(dataBytes).toBeGreaterThan(0);
    expect(largestInitializerBytes(graph)).toBe(largestInitializerBytes(whole.files.get('onnx/model.onnx') ?? new Uint8Array()));
    const inputs = ['weights kept apart', 'from the graph'];
    const a = await engineFor(whole).load(entryOf(whole));
    const b = await engineFor(split).load(entryOf(split));
    expect(await b.run({ kind: 'embed', model: split.id, inputs })).toEqual(await a.run({ kind: 'embed', model: whole.id, inputs }));
    await a.unload();
    await b.unload();
  });

  it('runs a q4 decoder (MatMulNBits weights in onnx/model_q4.onnx_data) to the same greedy tokens', async () => {
    const whole = standin(STANDIN_IDS.decoderQ4);
    const { split } = splitModel(whole, 'onnx/model_q4.onnx');
    const job = {
      kind: 'generate' as const,
      prompt: [1000, 2000, 3000, 4000],
      maxTokens: 6,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    };
    const a = await engineFor(whole).load(entryOf(whole));
    const b = await engineFor(split).load(entryOf(split));
    const expected = await a.run({ ...job, model: whole.id });
    expect(expected.kind === 'generate' && expected.tokens.length).toBeGreaterThan(0);
    expect(await b.run({ ...job, model: split.id })).toEqual(expected);
    await a.unload();
    await b.unload();
  }, 60_000);

  it('refuses a graph whose data file the manifest does not list, with the session’s reason', async () => {
    const { split } = splitModel(standin(STANDIN_IDS.encoder), 'onnx/model.onnx');
    const files = new Map(split.files);
    files.delete('onnx/model.onnx_data');
    const lacking = { ...split, files };
    await expect(engineFor(lacking).load(entryOf(lacking))).rejects.toThrow(/Loading model "standin-minilm-l6-tiny-external"/);
  });
});

describe('external data locations', () => {
  const encoder = (): BuiltModel<unknown> => standin(STANDIN_IDS.encoder);
  /** The encoder with its weights moved out of the graph to `location`, and only the graph listed. */
  function naming(location: string): { model: BuiltModel<unknown>; graph: Uint8Array; data: Uint8Array } {
    const whole = encoder();
    const { graph, data } = withExternalData(whole.files.get('onnx/model.onnx') ?? new Uint8Array(), location);
    const files = new Map(whole.files);
    files.set('onnx/model.onnx', graph);
    const id = `${whole.id}-elsewhere`;
    return { model: { ...whole, id, files, entry: { ...whole.entry, id } }, graph, data };
  }

  it('does not let a pinned graph read a file of the working directory into its weights on the operator’s machine', async () => {
    const { model, graph, data } = naming('operator-secret.bin');
    const dir = mkdtempSync(join(tmpdir(), 'spinneret-extdata-'));
    const cwd = process.cwd();
    try {
      // A local file the manifest never lists, where onnxruntime looks for what a graph loaded from bytes names.
      writeFileSync(join(dir, 'operator-secret.bin'), data);
      process.chdir(dir);
      // onnxruntime itself reads it: the weights come from the operator's file.
      const raw = await ortNode.InferenceSession.create(graph, { executionProviders: ['cpu'] });
      await raw.release();
      const inputs = ['read from the operator’s disk'];
      const refused = await loadOnnxNode(entryOf(model), model.files).then(
        async (loaded) => {
          // Loaded: show what it computed, the embeddings of the model whose weights the local file holds.
          const leaked = await loaded.run({ kind: 'embed', model: model.id, inputs });
          await loaded.unload();
          const whole = encoder();
          const reference = await loadOnnxNode(entryOf(whole), whole.files);
          const expected = await reference.run({ kind: 'embed', model: whole.id, inputs });
          await reference.unload();
          return { loadedWithTheLocalFileAsWeights: JSON.stringify(leaked) === JSON.stringify(expected) };
        },
        (err: unknown) => err,
      );
      expect(refused instanceof ExternalDataError ? 'refused' : refused).toBe('refused');
      expect((refused as Error).message).toContain(
        `Loading model "${model.id}" was refused: its graph names external data "operator-secret.bin"`,
      );
      expect((refused as Error).message).toContain('is not a file the manifest entry lists');
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['/etc/passwd', 'is an absolute path'],
    ['\\\\host\\share\\weights', 'is an absolute path'],
    ['C:\\weights.bin', 'is an absolute path'],
    ['../../etc/passwd', 'leaves the graph’s folder'],
    ['..', 'leaves the graph’s folder'],
    ['onnx/model.onnx_data', 'is in another folder than the graph'],
    ['./model.onnx_data', 'is in another folder than the graph'],
    ['model.onnx_data_other', 'is not a file the manifest entry lists'],
  ])('refuses a graph naming %s before any session is created', async (location, reason) => {
    const { model, graph, data } = naming(location);
    let created = 0;
    const counting = {
      ...ortNode,
      InferenceSession: {
        create: (bytes: Uint8Array, options: object) => {
          created++;
          return ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] });
        },
      },
    } as unknown as OrtModule;
    const request = { modelId: model.id, bytes: graph, backend: 'wasm' as const, device: null };
    const handed = [{ path: 'model.onnx_data', data }];
    await expect(createSession(counting, { ...request, externalData: handed })).rejects.toThrow(ExternalDataError);
    await expect(createSession(counting, request)).rejects.toThrow(reason);
    await expect(engineFor(model).load(entryOf(model))).rejects.toThrow(
      `Loading model "${model.id}" was refused: its graph names external data "${location}"`,
    );
    expect(created).toBe(0);
  });

  it('finds locations in constants, subgraphs and sparse initializers too, and none in a one-file graph', () => {
    const { onnx } = onnxProto;
    const external = (name: string, location: string): onnxProto.onnx.ITensorProto => ({
      name,
      dataType: onnx.TensorProto.DataType.FLOAT,
      dims: [1],
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: '0' },
      ],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    });
    const body: onnxProto.onnx.IGraphProto = { name: 'then', initializer: [external('inner', 'inner.bin')] };
    const model = onnx.ModelProto.encode({
      irVersion: 8,
      graph: {
        name: 'g',
        initializer: [external('w', 'model.onnx_data'), { name: 'marked', dataLocation: onnx.TensorProto.DataLocation.EXTERNAL }],
        sparseInitializer: [{ values: external('sparse', 'sparse.bin'), dims: [4] }],
        node: [
          {
            opType: 'Constant',
            output: ['c'],
            attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: external('c', '/abs') }],
          },
          {
            opType: 'If',
            input: ['cond'],
            output: ['o'],
            attribute: [{ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
          },
        ],
      },
    }).finish();
    expect(externalReferences(model)).toEqual([
      { tensor: 'c', location: '/abs' },
      { tensor: 'inner', location: 'inner.bin' },
      { tensor: 'w', location: 'model.onnx_data' },
      { tensor: 'marked', location: undefined },
      { tensor: 'sparse', location: 'sparse.bin' },
    ]);
    expect(externalReferences(encoder().files.get('onnx/model.onnx') ?? new Uint8Array())).toEqual([]);
    expect(() => externalReferences(model.subarray(0, model.length - 3))).toThrow();
  });
});
