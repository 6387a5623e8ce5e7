/**
 * Graphs published with external data (`onnx/model.onnx` + `onnx/model.onnx_data`, as exports
 * over protobuf's 2 GB limit are): the engine hands the data file to the session by the path
 * the graph names it with, and the model runs exactly as the same model in one file.
 */
import * as ortNode from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { parseManifest, type OnnxModel } from '../../../protocol/manifest.ts';
import { STANDIN_IDS, standinModels, testModels, type BuiltModel } from '../../../modelhost/models/index.ts';
import { largestInitializerBytes, withExternalData } from '../../../modelhost/models/onnx-graph.ts';
import { buildManifest } from '../../../modelhost/server.ts';
import type { EngineContext } from '../types.ts';
import { OnnxEngine } from './engine.ts';
import { externalDataFiles, type OrtModule } from './ort.ts';

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
