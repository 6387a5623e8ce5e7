/**
 * Test support (not used by the app): contributor runtimes for `tiny-decoder` generation and
 * its teacher-forced `score` checks, standing for three kinds of device:
 * - {@link OnnxNodeRuntime}: the worker's own onnx engine on onnxruntime-node (float32; chat too);
 * - {@link OtherBackendRuntime}: another implementation (the float64 reference) whose rounding
 *   flips the nearest tie of each run to the runner-up, as an honest GPU of another backend
 *   sometimes does: its tokens differ from the onnx engine's, yet every one is a likely token;
 * - {@link RandomTokenRuntime}: answers random tokens to every job (chat too), checks included.
 */
import { decoderTokenizer, referenceDecoderForward, referenceDecoderLogits } from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import type { ChatRequest, GenerateRequest, JobRequest, JobResult, ScoreRequest, StreamChunk } from '../protocol/jobs.ts';
import { type OnnxModel, parseManifest } from '../protocol/manifest.ts';
import { seededRandom } from '../protocol/random.ts';
import { ranksWithin } from '../protocol/teacher-forced.ts';
import { FakeRuntime } from '../worker/network/fake-runtime.ts';
import type { LoadedModel } from '../worker/engines/types.ts';
import { fetchModelFiles, fetchOnceMore, loadOnnxNode } from '../operator/known-answers/onnx-node.ts';

const MODEL = 'tiny-decoder';
const spec = (): { eos: readonly number[]; vocab: number } => {
  const d = testModels().decoder.entry.onnx.decoder;
  if (d === undefined) throw new Error('tiny-decoder has no decoder section');
  return { eos: d.eosTokenIds, vocab: d.vocabSize };
};

type RunOptions = { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void };

/** The prompt's token ids of a generate target (the tests send ids). */
function promptIds(target: ScoreRequest['target'] | GenerateRequest): number[] {
  if (target.kind !== 'generate') throw new Error('these runtimes run generate jobs');
  return typeof target.prompt === 'string' ? decoderTokenizer().encode(target.prompt).ids : [...target.prompt];
}

/** A runtime that serves `tiny-decoder` (and nothing else beside the double's own). */
abstract class DecoderRuntime extends FakeRuntime {
  /** Jobs run, by kind as opened (`score` for checks). */
  readonly ran: string[] = [];

  override async run(request: unknown, options: RunOptions = {}): Promise<{ result: JobResult }> {
    const job = request as JobRequest;
    if (job.model !== MODEL || (job.kind !== 'generate' && job.kind !== 'score' && job.kind !== 'chat')) return super.run(request, options);
    this.ran.push(job.kind);
    return { result: await this.answer(job) };
  }

  protected abstract answer(job: GenerateRequest | ChatRequest | ScoreRequest): Promise<JobResult>;

  override async models(): ReturnType<FakeRuntime['models']> {
    return (await super.models()).map((m) => (m.id === 'embed-model' ? { ...m, id: MODEL, cached: true } : m));
  }
}

/** The worker's onnx engine on onnxruntime-node, loaded from the model host's pinned files: generation and scoring. */
export class OnnxNodeRuntime extends DecoderRuntime {
  readonly #loaded: LoadedModel;
  private constructor(loaded: LoadedModel) {
    super();
    this.#loaded = loaded;
  }

  static async start(manifestUrl: string): Promise<OnnxNodeRuntime> {
    const manifest = parseManifest(await (await fetchOnceMore(manifestUrl)).json());
    const model = manifest.models.find((m): m is OnnxModel => m.id === MODEL && m.engine === 'onnx');
    if (model === undefined) throw new Error(`the manifest at ${manifestUrl} lists no ${MODEL}`);
    return new OnnxNodeRuntime(await loadOnnxNode(model, await fetchModelFiles(model)));
  }

  protected async answer(job: GenerateRequest | ChatRequest | ScoreRequest): Promise<JobResult> {
    return await this.#loaded.run(job);
  }

  async close(): Promise<void> {
    await this.#loaded.unload();
  }
}

/** Greedy decoding on the float64 reference, except that the step nearest a tie takes the runner-up. */
export function otherBackendGreedy(prompt: readonly number[], maxTokens: number): { tokens: number[]; finishReason: 'stop' | 'length' } {
  const { eos } = spec();
  // First pass: the plain greedy run and the step where best and runner-up were closest.
  const runs = (flipAt: number): { tokens: number[]; finishReason: 'stop' | 'length'; nearest: number } => {
    const seq = [...prompt];
    const tokens: number[] = [];
    let nearest = -1;
    let smallest = Infinity;
    for (let step = 0; tokens.length < maxTokens; step++) {
      const logits = referenceDecoderLogits(seq);
      const order = logits.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      const [best, second] = [order[0], order[1]];
      if (best === undefined || second === undefined) break;
      if (best[0] - second[0] < smallest && !eos.includes(second[1]) && !eos.includes(best[1])) {
        smallest = best[0] - second[0];
        nearest = step;
      }
      const pick = step === flipAt ? second[1] : best[1];
      if (eos.includes(pick)) return { tokens, finishReason: 'stop', nearest };
      tokens.push(pick);
      seq.push(pick);
    }
    return { tokens, finishReason: 'length', nearest };
  };
  const plain = runs(-1);
  const flipped = runs(plain.nearest);
  return { tokens: flipped.tokens, finishReason: flipped.finishReason };
}

/** Another backend, honest: the float64 reference, flipping each run's nearest tie; it scores with the reference too. */
export class OtherBackendRuntime extends DecoderRuntime {
  protected async answer(job: GenerateRequest | ChatRequest | ScoreRequest): Promise<JobResult> {
    if (job.kind === 'chat') throw new Error('this stand-in runs generate and score jobs');
    if (job.kind === 'generate') {
      const prompt = promptIds(job);
      const { tokens, finishReason } = otherBackendGreedy(prompt, job.maxTokens);
      return { kind: 'generate', tokens, finishReason, usage: { promptTokens: prompt.length, completionTokens: tokens.length } };
    }
    const prompt = promptIds(job.target);
    const sequence = [...prompt, ...job.output];
    const rows = referenceDecoderForward(sequence);
    const expected = job.output.map((token, i) => ({ at: prompt.length - 1 + i, tokens: [token] }));
    if (job.stopped) expected.push({ at: sequence.length - 1, tokens: [...spec().eos] });
    const inTopK = expected.filter(({ at, tokens }) =>
      tokens.some((t) => ranksWithin(rows[at] ?? [], t, job.topK, job.margin ?? 0)),
    ).length;
    return { kind: 'score', positions: expected.length, inTopK, usage: { promptTokens: sequence.length, completionTokens: 0 } };
  }
}

/** A cheat: random tokens for every job; asked to score, it answers random tokens as well. */
export class RandomTokenRuntime extends DecoderRuntime {
  readonly #random: () => number;
  constructor(seed: number) {
    super();
    this.#random = seededRandom(seed);
  }

  protected async answer(job: GenerateRequest | ChatRequest | ScoreRequest): Promise<JobResult> {
    const target = job.kind === 'score' ? job.target : job;
    const tokens = Array.from({ length: target.maxTokens }, () => 3 + Math.floor(this.#random() * (spec().vocab - 3)));
    const usage = { promptTokens: target.kind === 'generate' ? promptIds(target).length : 8, completionTokens: tokens.length };
    if (target.kind === 'chat') {
      return { kind: 'chat', text: decoderTokenizer().decode(tokens), tokens, finishReason: 'length', usage };
    }
    return { kind: 'generate', tokens, finishReason: 'length', usage };
  }
}
