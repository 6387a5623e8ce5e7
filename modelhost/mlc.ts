/**
 * Fixtures for the web-llm error paths (no MLC model can be compiled or downloaded here).
 *
 * URL layout assumed of the model host, with `<base>` the URL it serves models under:
 *   <base>/spinneret-test/tiny-mlc-q4f32_1-MLC/resolve/main/<file>
 * for each key of {@link mlcFixtureFiles} (keys are paths relative to `<base>`). web-llm
 * turns the build's `model` (`<base>/spinneret-test/tiny-mlc-q4f32_1-MLC`) into that
 * `resolve/main/` URL itself. The unreachable entry uses http://127.0.0.1:9 (discard port,
 * closed on the test machines), so the host serves nothing for it.
 */
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../protocol/errors.ts';
import type { ModelFile, WebLlmBuild, WebLlmModel } from '../protocol/manifest.ts';

export const MLC_FIXTURE_REPO = 'spinneret-test/tiny-mlc-q4f32_1-MLC';
const DIR = `${MLC_FIXTURE_REPO}/resolve/main`;
const LIB = 'tiny-mlc-q4f32_1-webgpu.wasm';
const CLOSED_PORT_BASE = 'http://127.0.0.1:9';
const MiB = 1024 * 1024;

/** What a load of each fixture model must fail with, for the e2e tests. */
export const MLC_FIXTURE_EXPECTED: Record<string, { code: ErrorCode; messageIncludes: string }> = {
  'tiny-mlc-corrupt-lib': { code: 'ENGINE', messageIncludes: 'is not valid WebAssembly' },
  'tiny-mlc-unreachable': { code: 'MODEL_UNREACHABLE', messageIncludes: `${CLOSED_PORT_BASE}/${DIR}/mlc-chat-config.json` },
  'tiny-mlc-f16-only': { code: 'FEATURE_MISSING', messageIncludes: 'shader-f16' },
  /** Needs a VRAM budget below 1 TiB in the worker. */
  'tiny-mlc-too-large': { code: 'MODEL_TOO_LARGE', messageIncludes: 'GPU memory' },
  'tiny-mlc-buffer-too-large': { code: 'MODEL_TOO_LARGE', messageIncludes: 'single GPU buffer' },
  'tiny-mlc-bad-hash': { code: 'INTEGRITY', messageIncludes: 'mlc-chat-config.json' },
};

const chatConfig = {
  version: '0.1.0',
  model_type: 'llama',
  quantization: 'q4f32_1',
  model_config: { hidden_size: 64, intermediate_size: 128, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 8 },
  vocab_size: 8,
  context_window_size: 512,
  sliding_window_size: -1,
  prefill_chunk_size: 64,
  attention_sink_size: -1,
  tensor_parallel_shards: 1,
  temperature: 0.7,
  presence_penalty: 0,
  frequency_penalty: 0,
  repetition_penalty: 1,
  top_p: 0.95,
  tokenizer_files: ['tokenizer.json'],
  tokenizer_info: { token_postproc_method: 'byte_level', prepend_space_in_encode: false, strip_space_in_decode: false },
  conv_template: {
    name: 'chatml',
    system_template: '<|im_start|>system\n{system_message}<|im_end|>\n',
    system_message: 'You are a test model.',
    roles: { user: '<|im_start|>user', assistant: '<|im_start|>assistant', tool: '<|im_start|>tool' },
    role_templates: { user: '{user_message}', assistant: '{assistant_message}', tool: '{tool_message}' },
    seps: ['<|im_end|>\n'],
    role_content_sep: '\n',
    role_empty_sep: '\n',
    stop_str: ['<|im_end|>'],
    stop_token_ids: [2],
    system_prefix_token_ids: [1],
    add_role_after_system_message: true,
  },
  pad_token_id: 0,
  bos_token_id: 1,
  eos_token_id: 2,
};

const tokenizer = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [],
  normalizer: null,
  pre_tokenizer: { type: 'Whitespace' },
  post_processor: null,
  decoder: null,
  model: {
    type: 'WordLevel',
    vocab: { '<pad>': 0, '<s>': 1, '</s>': 2, '<unk>': 3, hello: 4, world: 5, '.': 6, '!': 7 },
    unk_token: '<unk>',
  },
};

const tensorCache = { metadata: { ParamSize: 0, ParamBytes: 0, BitsPerParam: 0 }, records: [] };

/** Starts like WebAssembly (magic and version), then garbage: a truncated or damaged download. */
const corruptLib = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...new TextEncoder().encode('corrupt model library')]);

/** The fixture files, keyed by path relative to the model host's `<base>`. */
export function mlcFixtureFiles(): Map<string, Uint8Array> {
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  return new Map([
    [`${DIR}/mlc-chat-config.json`, json(chatConfig)],
    [`${DIR}/tokenizer.json`, json(tokenizer)],
    [`${DIR}/tensor-cache.json`, json(tensorCache)],
    [`${DIR}/${LIB}`, corruptLib.slice()],
  ]);
}

/**
 * Manifest entries for the error-path e2e tests; {@link MLC_FIXTURE_EXPECTED} says what each
 * must fail with. `baseUrl` is the model host's `<base>`, without a trailing slash.
 */
export function mlcManifestEntries(baseUrl: string): WebLlmModel[] {
  const base = baseUrl.replace(/\/+$/, '');
  const files = mlcFixtureFiles();
  const listed = (names: string[], at = base): ModelFile[] =>
    names.map((name) => {
      const bytes = files.get(`${DIR}/${name}`) ?? new Uint8Array();
      return { name, url: `${at}/${DIR}/${name}`, size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
    });
  const build = (over: Partial<WebLlmBuild> = {}, at = base): WebLlmBuild => ({
    quantization: 'q4f32_1',
    modelId: 'tiny-mlc-q4f32_1-MLC',
    model: `${at}/${MLC_FIXTURE_REPO}`,
    modelLib: `${at}/${DIR}/${LIB}`,
    vramBytes: 64 * MiB,
    requiredFeatures: [],
    contextWindow: 512,
    files: [],
    ...over,
  });
  const model = (id: string, name: string, builds: WebLlmBuild[], extra: Partial<WebLlmModel> = {}): WebLlmModel => ({
    id,
    name,
    description: `Test fixture: loading must fail with ${MLC_FIXTURE_EXPECTED[id]?.code ?? 'an error'}.`,
    kinds: ['chat'],
    files: [],
    vramBytes: builds[0]?.vramBytes ?? 0,
    requiredFeatures: [],
    engine: 'webllm',
    webllm: { builds },
    ...extra,
  });
  const allFiles = ['mlc-chat-config.json', LIB, 'tokenizer.json', 'tensor-cache.json'];
  const badHash = listed(allFiles).map((f) => (f.name === 'mlc-chat-config.json' ? { ...f, sha256: '0'.repeat(64) } : f));
  return [
    model('tiny-mlc-corrupt-lib', 'Tiny MLC (corrupt model library)', [build({ files: listed(allFiles) })]),
    // No files listed: web-llm itself meets the closed port on its first fetch.
    model('tiny-mlc-unreachable', 'Tiny MLC (unreachable host)', [build({}, CLOSED_PORT_BASE)]),
    model('tiny-mlc-f16-only', 'Tiny MLC (q4f16_1 only)', [
      build({ quantization: 'q4f16_1', modelId: 'tiny-mlc-q4f16_1-MLC', requiredFeatures: ['shader-f16'] }),
    ]),
    model('tiny-mlc-too-large', 'Tiny MLC (1 TiB of VRAM)', [build({ vramBytes: 2 ** 40 })]),
    model('tiny-mlc-buffer-too-large', 'Tiny MLC (2 GiB buffer)', [build()], { maxBufferBytes: 2 * 1024 * MiB }),
    model('tiny-mlc-bad-hash', 'Tiny MLC (wrong SHA-256 for its config)', [build({ files: badHash })]),
  ];
}
