/**
 * The models this network serves: the same signed-off manifest the model host publishes and
 * the workers run from. The coordinator reads model facts here (engine, builds, files,
 * tokenizer) instead of believing what a contributor or requester says about a model.
 */
import { fetchManifest, type Manifest, type ModelEntry } from '../../protocol/manifest.ts';

export class ModelCatalog {
  readonly #byId: ReadonlyMap<string, ModelEntry>;

  constructor(manifest: Manifest) {
    this.#byId = new Map(manifest.models.map((m) => [m.id, m]));
  }

  /** Reads and validates the manifest at `url` (a model host's `manifest.json`). */
  static async load(url: string, fetchImpl: typeof fetch = fetch): Promise<ModelCatalog> {
    return new ModelCatalog(await fetchManifest(url, fetchImpl));
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
}
