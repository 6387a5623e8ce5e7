import { readFileSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ManifestError } from './errors.ts';
import { decoderFacts, encoderFacts, isEncoderFamily, poolingOf, type GraphInput, type HubFiles } from './hub-config.ts';

function hub(repo: string, graphInputs?: GraphInput[]): HubFiles {
  const dir = new URL(`./hub-fixtures/${repo.replace('/', '__')}/`, import.meta.url);
  const read = (name: string): unknown => {
    const url = new URL(name, dir);
    return existsSync(url) ? (JSON.parse(readFileSync(url, 'utf8')) as unknown) : undefined;
  };
  const files: HubFiles = { config: read('config.json') };
  const optional = {
    generationConfig: read('generation_config.json'),
    tokenizerConfig: read('tokenizer_config.json'),
    modules: read('modules.json'),
    pooling: read('1_Pooling/config.json'),
    sentenceBertConfig: read('sentence_bert_config.json'),
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (files as unknown as Record<string, unknown>)[k] = v;
  if (graphInputs !== undefined) files.graphInputs = graphInputs;
  return files;
}

const bertInputs: GraphInput[] = [
  { name: 'input_ids', type: 'int64' },
  { name: 'attention_mask', type: 'int64' },
  { name: 'token_type_ids', type: 'int64' },
];

function decoderInputs(layers: number, cache: string): GraphInput[] {
  const inputs: GraphInput[] = [
    { name: 'input_ids', type: 'int64' },
    { name: 'attention_mask', type: 'int64' },
    { name: 'position_ids', type: 'int64' },
  ];
  for (let i = 0; i < layers; i++)
    inputs.push({ name: `past_key_values.${i}.key`, type: cache }, { name: `past_key_values.${i}.value`, type: cache });
  return inputs;
}

describe('encoders (BERT family)', () => {
  it('all-MiniLM-L6-v2: mean pooling, normalized, 256 tokens, token types from the graph', () => {
    const facts = encoderFacts(hub('sentence-transformers/all-MiniLM-L6-v2', bertInputs));
    expect(facts).toEqual({
      family: 'bert',
      dim: 384,
      numLayers: 6,
      numHeads: 12,
      vocabSize: 30522,
      maxTokens: 256,
      pooling: 'mean',
      normalize: true,
      tokenTypeIds: true,
      prefixes: {},
    });
  });

  it('bge-small-en-v1.5: CLS pooling from its pooling config', () => {
    const facts = encoderFacts(hub('BAAI/bge-small-en-v1.5', bertInputs));
    expect(facts.pooling).toBe('cls');
    expect(facts.normalize).toBe(true);
    expect(facts.numLayers).toBe(12);
    expect(facts.maxTokens).toBe(512);
  });

  it('a graph without token_type_ids gets none, whatever the config says', () => {
    const facts = encoderFacts(hub('sentence-transformers/all-MiniLM-L6-v2', bertInputs.slice(0, 2)));
    expect(facts.tokenTypeIds).toBe(false);
  });
});

describe('encoders (XLM-R family)', () => {
  it('multilingual-e5-small: 250k vocabulary, mean pooling; prefixes come from the sentence-transformers prompts', () => {
    const files = hub('intfloat/multilingual-e5-small', bertInputs);
    expect(encoderFacts(files)).toMatchObject({ vocabSize: 250037, pooling: 'mean', normalize: true, maxTokens: 512, prefixes: {} });
    files.sentenceTransformersConfig = { prompts: { query: 'query: ', passage: 'passage: ' } };
    expect(encoderFacts(files).prefixes).toEqual({ query: 'query: ', passage: 'passage: ' });
  });

  it('xlm-roberta: positions start after padding_idx, so 514 rows hold 512 tokens', () => {
    const files = hub('FacebookAI/xlm-roberta-base');
    expect(isEncoderFamily(files.config)).toBe(true);
    const facts = encoderFacts(files);
    expect(facts.family).toBe('xlm-roberta');
    expect(facts.maxTokens).toBe(512);
    // type_vocab_size 1: no token types without a graph saying otherwise.
    expect(facts.tokenTypeIds).toBe(false);
  });
});

describe('pooling choice', () => {
  it('no Normalize module: vectors are left as pooled', () => {
    const modules = [
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ];
    expect(poolingOf({ modules, pooling: { pooling_mode_mean_tokens: true } })).toEqual({ pooling: 'mean', normalize: false });
    expect(poolingOf({ modules, pooling: { pooling_mode: 'cls' } })).toEqual({ pooling: 'cls', normalize: false });
  });

  it('max pooling is refused by name', () => {
    const modules = [{ type: 'sentence_transformers.models.Pooling' }];
    expect(() => poolingOf({ modules, pooling: { pooling_mode_max_tokens: true } })).toThrow(/pooling_mode_max_tokens/);
  });

  it('a Pooling module without its config names the missing file', () => {
    expect(() => poolingOf({ modules: [{ type: 'sentence_transformers.models.Pooling' }] })).toThrow(/1_Pooling\/config\.json/);
  });
});

describe('decoders', () => {
  it('Qwen2.5-0.5B-Instruct: GQA 14/2, head 64, both end tokens, fp16 cache from a q4f16 graph', () => {
    const facts = decoderFacts(hub('Qwen/Qwen2.5-0.5B-Instruct', decoderInputs(24, 'float16')));
    expect(facts).toMatchObject({
      family: 'qwen2',
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      headDim: 64,
      vocabSize: 151936,
      maxContext: 32768,
      eosTokenIds: [151645, 151643],
      bosTokenId: 151643,
      positionIds: true,
      cacheType: 'float16',
      specialTokens: { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' },
    });
    expect(facts.chatTemplate).toContain('<|im_start|>');
  });

  it('the same model exported fp32 keeps an fp32 cache', () => {
    expect(decoderFacts(hub('Qwen/Qwen2.5-0.5B-Instruct', decoderInputs(24, 'float32'))).cacheType).toBe('float32');
  });

  it('Llama-3.2-1B-Instruct: three end tokens, head_dim from the config', () => {
    const facts = decoderFacts(hub('meta-llama/Llama-3.2-1B-Instruct', decoderInputs(16, 'float16')));
    expect(facts).toMatchObject({ numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, vocabSize: 128256, maxContext: 131072 });
    expect(facts.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(facts.chatTemplate).toBeNull();
  });

  it('SmolLM2-360M-Instruct: 15 heads over 5 KV heads', () => {
    const facts = decoderFacts(hub('HuggingFaceTB/SmolLM2-360M-Instruct'));
    expect(facts).toMatchObject({ family: 'llama', numHeads: 15, numKvHeads: 5, headDim: 64, eosTokenIds: [2], vocabSize: 49152 });
  });

  it('Phi-3-mini: config and generation config end tokens merged, context capped by the tokenizer', () => {
    const facts = decoderFacts(hub('microsoft/Phi-3-mini-4k-instruct', decoderInputs(32, 'float32')));
    expect(facts).toMatchObject({ family: 'phi3', numKvHeads: 32, headDim: 96, vocabSize: 32064, maxContext: 4096 });
    expect(facts.eosTokenIds).toEqual([32000, 32001, 32007]);
    expect(facts.specialTokens['eos_token']).toBe('<|endoftext|>');
  });

  it('a graph without position_ids is fed none', () => {
    const inputs = decoderInputs(16, 'float32').filter((i) => i.name !== 'position_ids');
    expect(decoderFacts(hub('meta-llama/Llama-3.2-1B-Instruct', inputs)).positionIds).toBe(false);
  });

  it('a config without end tokens, or with an int8 cache, is refused with a reason', () => {
    expect(() =>
      decoderFacts({
        config: {
          model_type: 'llama',
          num_attention_heads: 2,
          hidden_size: 8,
          num_hidden_layers: 1,
          vocab_size: 9,
          max_position_embeddings: 16,
        },
      }),
    ).toThrow(/eos_token_id/);
    expect(() => decoderFacts(hub('HuggingFaceTB/SmolLM2-360M-Instruct', decoderInputs(1, 'int8')))).toThrow(ManifestError);
    expect(() => decoderFacts({ config: { model_type: 'llama' } })).toThrow(/num_attention_heads/);
  });
});
