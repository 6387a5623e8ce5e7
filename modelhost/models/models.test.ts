import { Tokenizer } from '@huggingface/tokenizers';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { buildTestModels, modelList } from './index.ts';

const { onnx } = onnxProto;

function json(files: Map<string, Uint8Array>, name: string): object {
  return JSON.parse(new TextDecoder().decode(files.get(name))) as object;
}

describe('test models', () => {
  const first = buildTestModels();
  const second = buildTestModels();

  it('are byte-identical across builds', () => {
    const a = modelList(first);
    const b = modelList(second);
    expect(a.map((m) => m.id)).toEqual(['tiny-embed', 'tiny-q4', 'tiny-decoder']);
    for (const [i, model] of a.entries()) {
      const other = b[i]!;
      expect([...other.files.keys()]).toEqual([...model.files.keys()]);
      for (const [name, bytes] of model.files) {
        expect(bytes.length, `${model.id}/${name}`).toBeGreaterThan(0);
        expect(Buffer.from(other.files.get(name)!).equals(Buffer.from(bytes)), `${model.id}/${name}`).toBe(true);
      }
    }
  });

  it('declare the graph inputs and outputs the manifest promises', () => {
    const graph = (bytes: Uint8Array | undefined) => onnx.ModelProto.decode(bytes!).graph!;
    const names = (values: { name?: string | null }[] | null | undefined) => (values ?? []).map((v) => v.name);

    const embed = graph(first.embed.files.get('onnx/model.onnx'));
    expect(names(embed.input)).toEqual(['input_ids', 'attention_mask']);
    expect(names(embed.output)).toEqual(['last_hidden_state']);

    const q4 = onnx.ModelProto.decode(first.q4.files.get('onnx/model_q4.onnx')!);
    expect(q4.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 17],
      ['com.microsoft', 1],
    ]);
    expect((q4.graph?.node ?? []).find((n) => n.opType === 'MatMulNBits')?.domain).toBe('com.microsoft');

    const decoder = graph(first.decoder.files.get('onnx/model.onnx'));
    const spec = first.decoder.entry.onnx.decoder!;
    const kv = Array.from({ length: spec.numLayers }, (_, i) => [`.${i}.key`, `.${i}.value`]).flat();
    expect(names(decoder.input)).toEqual(['input_ids', 'attention_mask', 'position_ids', ...kv.map((s) => `past_key_values${s}`)]);
    expect(names(decoder.output)).toEqual(['logits', ...kv.map((s) => `present${s}`)]);
  });

  it('ship a WordPiece tokenizer.json that @huggingface/tokenizers loads', () => {
    const files = first.embed.files;
    const tokenizer = new Tokenizer(json(files, 'tokenizer.json'), json(files, 'tokenizer_config.json'));
    const encoded = tokenizer.encode('Hello, World! Foxes jumped.');
    expect(encoded.tokens).toEqual([
      '[CLS]',
      'he',
      '##l',
      '##l',
      '##o',
      ',',
      'world',
      '!',
      'f',
      '##o',
      '##x',
      '##es',
      'j',
      '##u',
      '##m',
      '##p',
      '##ed',
      '.',
      '[SEP]',
    ]);
    expect(encoded.ids[0]).toBe(2);
    expect(encoded.attention_mask.every((m) => m === 1)).toBe(true);
    expect(tokenizer.token_to_id('[PAD]')).toBe(0);
    expect(tokenizer.decode(encoded.ids, { skip_special_tokens: true })).toBe('hello, world! foxes jumped.');
  });

  it('ship a BPE tokenizer.json for the decoder with chat special tokens and eos', () => {
    const files = first.decoder.files;
    const tokenizer = new Tokenizer(json(files, 'tokenizer.json'), json(files, 'tokenizer_config.json'));
    const spec = first.decoder.entry.onnx.decoder!;
    const encoded = tokenizer.encode('<|user|>Hello there\n<|assistant|>');
    expect(encoded.tokens[0]).toBe('<|user|>');
    expect(encoded.tokens.at(-1)).toBe('<|assistant|>');
    expect(encoded.tokens).toContain('▁the');
    expect(encoded.ids.every((id) => id > 0 && id < spec.vocabSize)).toBe(true);
    expect(spec.eosTokenIds).toEqual([tokenizer.token_to_id('</s>')]);
    expect(tokenizer.decode(tokenizer.encode('the cat sat').ids)).toBe('the cat sat');
  });
});
