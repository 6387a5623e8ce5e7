/**
 * The margin probe opens a decoder published with external data from the model's checked
 * files, as the engine does: its gaps equal those of the same model in one file.
 */
import { describe, expect, it } from 'vitest';
import { parseManifest, type OnnxModel } from '../../protocol/manifest.ts';
import { STANDIN_IDS, standinModels, testModels, type BuiltModel } from '../../modelhost/models/index.ts';
import { withExternalData } from '../../modelhost/models/onnx-graph.ts';
import { buildManifest } from '../../modelhost/server.ts';
import { ExternalDataError } from '../../worker/engines/onnx/external-data.ts';
import { MarginProbe } from './margins.ts';

function entryOf(model: BuiltModel<unknown>): OnnxModel {
  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://host.invalid', testModels(), () => [], [model]))));
  const entry = manifest.models.find((m) => m.id === model.id);
  if (entry?.engine !== 'onnx') throw new Error('no entry');
  return entry;
}

function decoder(): { whole: BuiltModel<unknown>; split: BuiltModel<unknown>; graph: string } {
  const whole = standinModels().find((m) => m.id === STANDIN_IDS.decoderQ4);
  if (whole === undefined) throw new Error('no q4 stand-in');
  const graph = 'onnx/model_q4.onnx';
  const { graph: bytes, data } = withExternalData(whole.files.get(graph) ?? new Uint8Array(), 'model_q4.onnx_data');
  const files = new Map(whole.files);
  files.set(graph, bytes);
  files.set(`${graph}_data`, data);
  const id = `${whole.id}-external`;
  return { whole, split: { ...whole, id, files, entry: { ...whole.entry, id } }, graph };
}

describe('margin probe', () => {
  it('reads a decoder’s external data from the model’s files, to the same gaps as the one-file graph', async () => {
    const { whole, split } = decoder();
    const gaps: number[] = [];
    for (const model of [whole, split]) {
      const entry = entryOf(model);
      if (entry.onnx.decoder === undefined) throw new Error('not a decoder');
      const probe = await MarginProbe.open(entry, entry.onnx.decoder, model.files);
      gaps.push(await probe.smallest([1000, 2000, 3000], [4000, 5000], false));
      await probe.close();
    }
    expect(gaps[0]).toBeGreaterThan(0);
    expect(gaps[1]).toBe(gaps[0]);
  }, 60_000);

  it('refuses a graph whose data file the manifest does not list', async () => {
    const { split, graph } = decoder();
    const files = new Map(split.files);
    files.delete(`${graph}_data`);
    const entry = entryOf({ ...split, files });
    if (entry.onnx.decoder === undefined) throw new Error('not a decoder');
    await expect(MarginProbe.open(entry, entry.onnx.decoder, files)).rejects.toThrow(ExternalDataError);
  });
});
