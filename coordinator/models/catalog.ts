/**
 * The models this network serves: the same signed-off manifest the model host publishes and
 * the workers run from. The coordinator reads model facts here (engine, builds, files,
 * tokenizer) instead of believing what a contributor or requester says about a model,
 * including the limits billing envelopes are checked against.
 */
import type { EnvelopeLimits } from '../../protocol/billing.ts';
import { type JobKind, fetchManifest, type Manifest, type ModelEntry } from '../../protocol/manifest.ts';
import { fetchVerified, maxBytesPerToken, tokenizerFiles } from '../../protocol/tokenizer-files.ts';

/** Most inputs one embed job carries (protocol/jobs.ts `EmbedRequest`). */
const MAX_EMBED_INPUTS = 256;

/** Options of {@link ModelCatalog}. */
export interface ModelCatalogOptions {
  /** Reads tokenizer files. Default the global fetch. */
  fetch?: typeof fetch;
}

export class ModelCatalog {
  readonly #byId: ReadonlyMap<string, ModelEntry>;
  readonly #fetch: typeof fetch;
  /** Bytes per token of each model's tokenizer, once read; failures are not kept, so a later call tries again. */
  readonly #bytesPerToken = new Map<string, Promise<number | null>>();

  constructor(manifest: Manifest, options: ModelCatalogOptions = {}) {
    this.#byId = new Map(manifest.models.map((m) => [m.id, m]));
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Reads and validates the manifest at `url` (a model host's `manifest.json`). */
  static async load(url: string, fetchImpl: typeof fetch = fetch): Promise<ModelCatalog> {
    return new ModelCatalog(await fetchManifest(url, fetchImpl), { fetch: fetchImpl });
  }

  get(id: string): ModelEntry | undefined {
    return this.#byId.get(id);
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  all(): readonly ModelEntry[] {
    return [...this.#byId.values()];
  }

  /**
   * What a billing envelope for a `kind` job of model `id` is checked against, from the
   * manifest and the model's own tokenizer (fetched once, checked against its SHA-256).
   * All nulls for a model the catalog does not list.
   */
  async limits(id: string, kind: JobKind): Promise<EnvelopeLimits> {
    const model = this.#byId.get(id);
    if (model === undefined) return { maxTokens: null, maxOutputTokens: null, maxBytesPerToken: null };
    if (kind === 'infer') return { maxTokens: 0, maxOutputTokens: 0, maxBytesPerToken: null };
    // A tokenizer the model host cannot serve now leaves the byte bound off (usage is still
    // clamped to the envelope, and the claim kept); the next job asks again.
    const bytes = await this.#tokenBytes(model).catch(() => null);
    if (model.engine === 'webllm') {
      const windows = model.webllm.builds.flatMap((b) => (b.contextWindow === undefined ? [] : [b.contextWindow]));
      return { maxTokens: windows.length > 0 ? Math.max(...windows) : null, maxOutputTokens: null, maxBytesPerToken: bytes };
    }
    if (kind === 'embed') {
      const perInput = model.onnx.embedding?.maxTokens;
      return { maxTokens: perInput === undefined ? null : perInput * MAX_EMBED_INPUTS, maxOutputTokens: 0, maxBytesPerToken: bytes };
    }
    const decoder = model.onnx.decoder;
    // A prompt given as token ids costs at most the digits of the largest id and a comma per token.
    const idBytes = decoder === undefined ? 1 : String(decoder.vocabSize).length + 1;
    return {
      maxTokens: decoder?.maxContext ?? null,
      maxOutputTokens: null,
      maxBytesPerToken: bytes === null ? null : Math.max(bytes, idBytes),
    };
  }

  #tokenBytes(model: ModelEntry): Promise<number | null> {
    let found = this.#bytesPerToken.get(model.id);
    if (found === undefined) {
      const files = tokenizerFiles(model);
      found =
        files === null
          ? Promise.resolve(null)
          : fetchVerified(files.json, this.#fetch).then((bytes) => maxBytesPerToken(JSON.parse(new TextDecoder().decode(bytes))));
      found.catch(() => this.#bytesPerToken.delete(model.id));
      this.#bytesPerToken.set(model.id, found);
    }
    return found;
  }
}
