/**
 * Float64 reference implementations of the test models, written from the weights alone
 * (no onnxruntime, no ONNX bytes), so they check the graphs and the engines independently;
 * and of the Qwen-shaped stand-ins, from their config.json and their graph's weights by name.
 * The decoder reference recomputes the whole sequence at every step: no KV cache.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { testModels, type BuiltModel, type TinyDecoderWeights, type TinyEmbedWeights, type TinyQ4Weights } from './models/index.ts';
import { readInitializers, type InitializerValues } from './models/onnx-graph.ts';
import type { LayerNorm, Linear } from './models/layers.ts';

type Vec = Float64Array;

function at<T>(a: ArrayLike<T>, i: number): T {
  const value = a[i];
  if (value === undefined) throw new RangeError(`index ${i} outside 0..${a.length - 1}`);
  return value;
}

function row(table: Float32Array, index: number, width: number): Vec {
  if (index < 0 || (index + 1) * width > table.length) throw new RangeError(`row ${index} outside the table`);
  return Float64Array.from(table.subarray(index * width, (index + 1) * width));
}

function add(a: Vec, b: Vec): Vec {
  return a.map((x, i) => x + at(b, i));
}

// Hot loops read with `?? 0`: the lengths are checked on entry, so it never applies, and it
// keeps V8 on monomorphic typed-array reads (a generic checked accessor tripled the run time).

function linear(x: Vec, lin: Linear): Vec {
  if (x.length !== lin.inDim) throw new RangeError(`linear expects ${lin.inDim} inputs, got ${x.length}`);
  const { inDim, outDim, w } = lin;
  const y = Float64Array.from(lin.b);
  for (let i = 0; i < inDim; i++) {
    const xi = x[i] ?? 0;
    const base = i * outDim;
    for (let j = 0; j < outDim; j++) y[j] = (y[j] ?? 0) + xi * (w[base + j] ?? 0);
  }
  return y;
}

function layerNorm(x: Vec, ln: LayerNorm): Vec {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
  const inv = 1 / Math.sqrt(variance + ln.epsilon);
  return x.map((v, i) => (v - mean) * inv * at(ln.gamma, i) + at(ln.beta, i));
}

const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number): number => x / (1 + Math.exp(-x));

/**
 * Multi-head attention of one sequence. `visible(s, t)` says whether query s may see key t;
 * query head h reads KV head ⌊h / (heads / kvHeads)⌋.
 */
function attention(q: Vec[], k: Vec[], v: Vec[], heads: number, kvHeads: number, visible: (s: number, t: number) => boolean): Vec[] {
  const headDim = at(q, 0).length / heads;
  const kvWidth = kvHeads * headDim;
  if (k.some((kt) => kt.length !== kvWidth) || v.some((vt) => vt.length !== kvWidth))
    throw new RangeError('keys and values need kvHeads·headDim values');
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  return q.map((qs, s) => {
    const keys = k.map((_, t) => t).filter((t) => visible(s, t));
    const probs = new Float64Array(keys.length);
    const out = new Float64Array(heads * headDim);
    for (let h = 0; h < heads; h++) {
      const qOff = h * headDim;
      const kvOff = Math.floor(h / group) * headDim;
      let max = -Infinity;
      keys.forEach((t, j) => {
        const kt = at(k, t);
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += (qs[qOff + d] ?? 0) * (kt[kvOff + d] ?? 0);
        probs[j] = dot * scale;
        max = Math.max(max, dot * scale);
      });
      let sum = 0;
      for (let j = 0; j < probs.length; j++) {
        const e = Math.exp((probs[j] ?? 0) - max);
        probs[j] = e;
        sum += e;
      }
      keys.forEach((t, j) => {
        const vt = at(v, t);
        const p = (probs[j] ?? 0) / sum;
        for (let d = 0; d < headDim; d++) out[qOff + d] = (out[qOff + d] ?? 0) + p * (vt[kvOff + d] ?? 0);
      });
    }
    return out;
  });
}

function tokenizerOf(files: Map<string, Uint8Array>): Tokenizer {
  const json = (name: string): object => {
    const bytes = files.get(name);
    if (bytes === undefined) throw new Error(`model has no ${name}`);
    return JSON.parse(new TextDecoder().decode(bytes)) as object;
  };
  return new Tokenizer(json('tokenizer.json'), json('tokenizer_config.json'));
}

/** The `tiny-embed` tokenizer, loaded by `@huggingface/tokenizers` from the served tokenizer.json. */
export function embedTokenizer(): Tokenizer {
  return tokenizerOf(testModels().embed.files);
}

/** The `tiny-decoder` tokenizer, loaded from the served tokenizer.json. */
export function decoderTokenizer(): Tokenizer {
  return tokenizerOf(testModels().decoder.files);
}

/**
 * Prompts whose greedy continuation never comes within 1e-2 of a tie between the top two
 * logits (checked by reference.test.ts), so float32 engines must reproduce them exactly.
 * Chat prompts are already in the manifest's template.
 */
export const DECODER_TEST_PROMPTS = [
  '<|user|>Hello, how are you?\n<|assistant|>',
  '<|user|>Tell me a story.\n<|assistant|>',
  '<|user|>hi\n<|assistant|>',
  'Once upon a time',
  'The meaning of life is',
  'Hello',
] as const;

/**
 * The text a chat job becomes under tiny-decoder's chat template, written out by hand here
 * (each message as `<|role|>content\n`, then `<|assistant|>`): an independent check of the
 * Jinja rendering the engine does.
 */
export function referenceChatPrompt(messages: readonly { role: string; content: string }[]): string {
  return messages.map((m) => `<|${m.role}|>${m.content}\n`).join('') + '<|assistant|>';
}

/** `last_hidden_state` of one unpadded sequence, [seq][dim]. */
export function referenceEmbedHidden(ids: readonly number[], w: TinyEmbedWeights = testModels().embed.weights): Vec[] {
  const x0 = ids.map((id, s) => layerNorm(add(row(w.tokEmb, id, w.dim), row(w.posEmb, s, w.dim)), w.ln0));
  const ctx = attention(
    x0.map((x) => linear(x, w.q)),
    x0.map((x) => linear(x, w.k)),
    x0.map((x) => linear(x, w.v)),
    w.heads,
    w.heads,
    () => true,
  );
  return x0.map((x, s) => {
    const x1 = layerNorm(add(x, linear(at(ctx, s), w.o)), w.ln1);
    return layerNorm(add(x1, linear(linear(x1, w.ff1).map(geluTanh), w.ff2)), w.ln2);
  });
}

/** Embeddings as the host defines them: tokenize, forward, mean over the tokens, L2-normalize. */
export function referenceEmbed(texts: readonly string[], maxTokens = testModels().embed.entry.onnx.embedding?.maxTokens ?? 0): number[][] {
  const tokenizer = embedTokenizer();
  return texts.map((text) => {
    const { ids } = tokenizer.encode(text);
    if (ids.length > maxTokens) throw new RangeError(`"${text.slice(0, 20)}…" has ${ids.length} tokens, more than ${maxTokens}`);
    const hidden = referenceEmbedHidden(ids);
    const mean = hidden.reduce((sum, h) => add(sum, h)).map((v) => v / hidden.length);
    const norm = Math.sqrt(mean.reduce((s, v) => s + v * v, 0));
    return Array.from(mean, (v) => v / norm);
  });
}

/** Unpacks W [N][K] from the MatMulNBits initializers (layout in ./models/tiny-q4.ts). */
export function dequantizeQ4(w: TinyQ4Weights = testModels().q4.weights): Vec[] {
  const blocks = Math.ceil(w.k / w.blockSize);
  const blobSize = w.blockSize / 2;
  const zpBytesPerRow = Math.ceil(blocks / 2);
  const nibble = (bytes: Uint8Array, index: number): number => (at(bytes, index >> 1) >> ((index & 1) * 4)) & 0x0f;
  const rows: Vec[] = [];
  for (let n = 0; n < w.n; n++) {
    const r = new Float64Array(w.k);
    for (let k = 0; k < w.k; k++) {
      const block = Math.floor(k / w.blockSize);
      const q = nibble(w.packed, 2 * ((n * blocks + block) * blobSize) + (k % w.blockSize));
      const zp = nibble(w.zeroPoints, 2 * n * zpBytesPerRow + block);
      r[k] = (q - zp) * at(w.scales, n * blocks + block);
    }
    rows.push(r);
  }
  return rows;
}

/** `y` of `tiny-q4` for each row of `x` ([batch][64] → [batch][32]). */
export function referenceQ4(x: readonly (readonly number[])[], w: TinyQ4Weights = testModels().q4.weights): number[][] {
  const weight = dequantizeQ4(w);
  return x.map((xs) => {
    if (xs.length !== w.k) throw new RangeError(`each row of x needs ${w.k} values, got ${xs.length}`);
    return weight.map((wn, n) => wn.reduce((s, v, k) => s + v * at(xs, k), at(w.bias, n)));
  });
}

/** Logits at every position of one unpadded sequence (positions 0..n−1, causal), [seq][vocab]. */
export function referenceDecoderForward(ids: readonly number[], w: TinyDecoderWeights = testModels().decoder.weights): number[][] {
  if (ids.length === 0 || ids.length > w.maxContext) throw new RangeError(`a sequence holds 1..${w.maxContext} tokens, got ${ids.length}`);
  let x = ids.map((id, s) => add(row(w.tokEmb, id, w.dim), row(w.posEmb, s, w.dim)));
  for (const layer of w.layers) {
    const h = x.map((xs) => layerNorm(xs, layer.ln1));
    const ctx = attention(
      h.map((hs) => linear(hs, layer.q)),
      h.map((hs) => linear(hs, layer.k)),
      h.map((hs) => linear(hs, layer.v)),
      w.numHeads,
      w.numKvHeads,
      (s, t) => t <= s,
    );
    x = x.map((xs, s) => {
      const x1 = add(xs, linear(at(ctx, s), layer.o));
      return add(x1, linear(linear(layerNorm(x1, layer.ln2), layer.ff1).map(silu), layer.ff2));
    });
  }
  return x.map((xs, s) => {
    const hidden = layerNorm(xs, w.lnF);
    const logits = Array.from(add(row(w.posLogitBias, s, w.vocabSize), row(w.tokenLogitBias, at(ids, s), w.vocabSize)));
    for (let i = 0; i < w.dim; i++) {
      const hi = at(hidden, i);
      for (let j = 0; j < w.vocabSize; j++) logits[j] = (logits[j] ?? 0) + hi * (w.lmHead[i * w.vocabSize + j] ?? 0);
    }
    return logits;
  });
}

/** Logits at the last position of `ids`. */
export function referenceDecoderLogits(ids: readonly number[], w: TinyDecoderWeights = testModels().decoder.weights): number[] {
  return at(referenceDecoderForward(ids, w), ids.length - 1);
}

export interface GreedyResult {
  /** Generated token ids, without the prompt and without the final eos. */
  tokens: number[];
  /** `stop`: an eos token came; `length`: `maxTokens` or the context ran out. */
  finishReason: 'stop' | 'length';
  /** Smallest gap between the best and second-best logit over the steps: how far from a tie greedy ever was. */
  minMargin: number;
}

/** Greedy decoding that recomputes the full sequence at each step (no KV cache). */
export function referenceGreedy(
  promptIds: readonly number[],
  maxTokens: number,
  eosIds: readonly number[],
  w: TinyDecoderWeights = testModels().decoder.weights,
): GreedyResult {
  const seq = [...promptIds];
  const tokens: number[] = [];
  let minMargin = Infinity;
  while (tokens.length < maxTokens && seq.length < w.maxContext) {
    const logits = referenceDecoderLogits(seq, w);
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (at(logits, j) > at(logits, best)) best = j;
    const second = Math.max(...logits.filter((_, j) => j !== best));
    minMargin = Math.min(minMargin, at(logits, best) - second);
    if (eosIds.includes(best)) return { tokens, finishReason: 'stop', minMargin };
    tokens.push(best);
    seq.push(best);
  }
  return { tokens, finishReason: 'length', minMargin };
}

/**
 * Float64 reference of the Qwen-shaped stand-ins (models/standin-qwen.ts), written from the
 * architecture: the shapes and rope θ from its config.json, the weights read by name from the
 * graph's initializers (no onnxruntime; either rotary layout, since a packed QKV projection is
 * the separate ones stacked by rows), rotary angles computed here rather than read from the
 * graph's cos/sin tables. Recomputes the whole sequence at each call (no cache), positions 0..n−1.
 */
export class QwenStandinReference {
  readonly #init: Map<string, InitializerValues>;
  readonly #hidden: number;
  readonly #heads: number;
  readonly #kvHeads: number;
  readonly #layers: number;
  readonly #vocab: number;
  readonly #theta: number;
  readonly #eps: number;

  constructor(model: BuiltModel<unknown>) {
    const graph = model.files.get(model.entry.onnx.model);
    const config = model.files.get('config.json');
    if (graph === undefined || config === undefined) throw new Error(`${model.id} has no graph or config.json`);
    this.#init = readInitializers(graph);
    const c = JSON.parse(new TextDecoder().decode(config)) as Record<string, number>;
    const num = (key: string): number => {
      const value = c[key];
      if (typeof value !== 'number') throw new Error(`config.json has no ${key}`);
      return value;
    };
    this.#hidden = num('hidden_size');
    this.#heads = num('num_attention_heads');
    this.#kvHeads = num('num_key_value_heads');
    this.#layers = num('num_hidden_layers');
    this.#vocab = num('vocab_size');
    this.#theta = num('rope_theta');
    this.#eps = num('rms_norm_eps');
  }

  #tensor(name: string): Float64Array {
    const t = this.#init.get(name);
    if (t === undefined || t.values instanceof Uint8Array) throw new Error(`no float initializer ${name}`);
    return t.values;
  }

  /** y[n] = Σ_k x[k]·(q[n,k] − 8)·scale[n, k/32] (+ bias), rows `from..from+count` of a MatMulNBits weight. */
  #nbits(x: Vec, name: string, from = 0, count?: number, bias?: string): Vec {
    const packed = this.#init.get(`${name}.MatMul.weight_Q4`);
    if (packed === undefined || !(packed.values instanceof Uint8Array)) throw new Error(`no 4-bit weight ${name}`);
    const scales = this.#tensor(`${name}.MatMul.weight_scales`);
    const [n = 0, blocks = 0, blob = 0] = packed.dims;
    const rows = count ?? n;
    const bytes = packed.values;
    const b = bias === undefined ? undefined : this.#tensor(bias);
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const row = from + r;
      let sum = b?.[row] ?? 0;
      for (let blk = 0; blk < blocks; blk++) {
        const scale = scales[row * blocks + blk] ?? 0;
        const base = (row * blocks + blk) * blob;
        for (let j = 0; j < blob; j++) {
          const byte = bytes[base + j] ?? 0;
          const k = blk * 2 * blob + 2 * j;
          sum += (x[k] ?? 0) * ((byte & 0x0f) - 8) * scale + (x[k + 1] ?? 0) * ((byte >> 4) - 8) * scale;
        }
      }
      y[r] = sum;
    }
    return y;
  }

  #rms(x: Vec, name: string): Vec {
    const gamma = this.#tensor(name);
    const inv = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + this.#eps);
    return x.map((v, i) => v * inv * (gamma[i] ?? 0));
  }

  /** Non-interleaved rotary: each head's halves (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin). */
  #rotate(x: Vec, heads: number, position: number): Vec {
    const headDim = this.#hidden / this.#heads;
    const half = headDim / 2;
    const out = new Float64Array(x.length);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = position * this.#theta ** ((-2 * i) / headDim);
        const a = x[h * headDim + i] ?? 0;
        const b = x[h * headDim + half + i] ?? 0;
        out[h * headDim + i] = a * Math.cos(angle) - b * Math.sin(angle);
        out[h * headDim + half + i] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
    return out;
  }

  #project(h: Vec, layer: string, part: 'q' | 'k' | 'v'): Vec {
    const headDim = this.#hidden / this.#heads;
    const kvDim = this.#kvHeads * headDim;
    if (this.#init.has(`${layer}.attn.qkv_proj.MatMul.weight_Q4`)) {
      const from = part === 'q' ? 0 : part === 'k' ? this.#hidden : this.#hidden + kvDim;
      return this.#nbits(h, `${layer}.attn.qkv_proj`, from, part === 'q' ? this.#hidden : kvDim, `${layer}.attn.qkv_proj.bias`);
    }
    return this.#nbits(h, `${layer}.attn.${part}_proj`, 0, undefined, `${layer}.attn.${part}_proj.bias`);
  }

  /** Logits at the last position of `ids`. */
  logits(ids: readonly number[]): Float64Array {
    const embed = this.#tensor('model.embed_tokens.weight');
    const hidden = this.#hidden;
    let x: Vec[] = ids.map((id) => embed.slice(id * hidden, (id + 1) * hidden));
    for (let l = 0; l < this.#layers; l++) {
      const p = `model.layers.${l}`;
      const h = x.map((xs) => this.#rms(xs, `${p}.input_layernorm.weight`));
      const ctx = attention(
        h.map((hs, s) => this.#rotate(this.#project(hs, p, 'q'), this.#heads, s)),
        h.map((hs, s) => this.#rotate(this.#project(hs, p, 'k'), this.#kvHeads, s)),
        h.map((hs) => this.#project(hs, p, 'v')),
        this.#heads,
        this.#kvHeads,
        (s, t) => t <= s,
      );
      x = x.map((xs, s) => {
        const x1 = add(xs, this.#nbits(at(ctx, s), `${p}.attn.o_proj`));
        const h2 = this.#rms(x1, `${p}.post_attention_layernorm.weight`);
        const gate = this.#nbits(h2, `${p}.mlp.gate_proj`);
        const up = this.#nbits(h2, `${p}.mlp.up_proj`);
        return add(
          x1,
          this.#nbits(
            gate.map((g, i) => silu(g) * at(up, i)),
            `${p}.mlp.down_proj`,
          ),
        );
      });
    }
    const last = this.#rms(at(x, x.length - 1), 'model.norm.weight');
    const logits = this.#nbits(last, 'lm_head');
    if (logits.length !== this.#vocab) throw new RangeError(`lm_head gives ${logits.length} logits, config.json says ${this.#vocab}`);
    return logits;
  }

  /** Greedy decoding, recomputing the whole sequence each step. */
  greedy(prompt: readonly number[], maxTokens: number, eosIds: readonly number[]): GreedyResult {
    const seq = [...prompt];
    const tokens: number[] = [];
    let minMargin = Infinity;
    while (tokens.length < maxTokens) {
      const logits = this.logits(seq);
      let best = 0;
      for (let j = 1; j < logits.length; j++) if ((logits[j] ?? 0) > (logits[best] ?? 0)) best = j;
      let second = -Infinity;
      for (let j = 0; j < logits.length; j++) if (j !== best) second = Math.max(second, logits[j] ?? 0);
      minMargin = Math.min(minMargin, (logits[best] ?? 0) - second);
      if (eosIds.includes(best)) return { tokens, finishReason: 'stop', minMargin };
      tokens.push(best);
      seq.push(best);
    }
    return { tokens, finishReason: 'length', minMargin };
  }
}
