/** The `onnx` engine: onnxruntime-web on WebGPU, with WASM where the model and device call for it. */
import { EngineError, toSpinneretError } from '../../../protocol/errors.ts';
import type { ModelEntry, ModelFile, OnnxModel } from '../../../protocol/manifest.ts';
import type { Engine, EngineContext, LoadOptions, LoadedModel, RunPlan } from '../types.ts';
import { presentNames } from './decoder.ts';
import { createSession, externalDataFiles, loadOrt, type OrtModule } from './ort.ts';
import { selectOnnxBackend, type BackendChoice } from './select.ts';

export interface OnnxEngineOptions {
  /** Loads onnxruntime-web; tests inject the Node build. */
  loadOrt?: () => Promise<OrtModule>;
  /** GPU memory the contributor allows, bytes. */
  vramBudgetBytes?: () => number;
  /** Forces a backend (benchmarks compare WebGPU with WASM). */
  forceBackend?: () => BackendChoice['backend'] | undefined;
}

export class OnnxEngine implements Engine {
  readonly kind = 'onnx' as const;
  readonly #ctx: EngineContext;
  readonly #options: Required<Omit<OnnxEngineOptions, 'forceBackend'>> & {
    forceBackend: OnnxEngineOptions['forceBackend'] | undefined;
  };

  constructor(ctx: EngineContext, options: OnnxEngineOptions = {}) {
    this.#ctx = ctx;
    this.#options = {
      loadOrt: options.loadOrt ?? loadOrt,
      vramBudgetBytes: options.vramBudgetBytes ?? (() => 4 * 1024 ** 3),
      forceBackend: options.forceBackend,
    };
  }

  /** Chooses the backend for `model` here; throws the typed reason when it cannot run. */
  choose(model: OnnxModel): BackendChoice {
    const force = this.#options.forceBackend?.();
    return selectOnnxBackend(model, {
      gpu: this.#ctx.gpu(),
      gpuUnavailableReason: 'no WebGPU adapter',
      vramBudgetBytes: this.#options.vramBudgetBytes(),
      ...(force !== undefined ? { force } : {}),
    });
  }

  plan(model: ModelEntry): RunPlan {
    if (model.engine !== 'onnx') throw new EngineError(`Model "${model.id}" is not an ONNX model.`);
    const choice = this.choose(model);
    return {
      backend: choice.backend,
      memoryBytes: choice.backend === 'webgpu' ? model.vramBytes : model.files.reduce((sum, f) => sum + f.size, 0),
      ...(choice.fallbackReason !== undefined ? { fallbackReason: choice.fallbackReason } : {}),
    };
  }

  async load(model: ModelEntry, options: LoadOptions = {}): Promise<LoadedModel> {
    if (model.engine !== 'onnx') throw new EngineError(`Model "${model.id}" is not an ONNX model.`);
    const choice = this.choose(model);
    const files = await fetchAll(this.#ctx, model, options);
    const file = (name: string | undefined): Uint8Array | undefined => (name === undefined ? undefined : files.get(name));
    options.onProgress?.({
      modelId: model.id,
      phase: 'compile',
      loadedBytes: 0,
      totalBytes: 0,
      text: `Creating ${choice.backend} session`,
    });
    try {
      // The code that runs a model (tokenizer, chat template, hub-file facts) loads with the
      // first model, alongside onnxruntime-web: none of it is in the worker started on mount.
      const [ort, { openLoadedModel }] = await Promise.all([this.#options.loadOrt(), import('./loaded.ts')]);
      const device = choice.backend === 'webgpu' ? await this.#ctx.device() : null;
      const bytes = file(model.onnx.model);
      if (bytes === undefined) throw new EngineError(`Model "${model.id}" lacks its graph file.`);
      const session = await createSession(ort, {
        bytes,
        backend: choice.backend,
        device,
        gpuOutputs: model.onnx.decoder !== undefined ? presentNames(model.onnx.decoder) : [],
        externalData: externalDataFiles(model.onnx.model, files),
      });
      const loaded = await openLoadedModel(ort, model, files, session, choice);
      options.onProgress?.({ modelId: model.id, phase: 'ready', loadedBytes: 0, totalBytes: 0 });
      return loaded;
    } catch (err) {
      throw toSpinneretError(err, `Loading model "${model.id}" on ${choice.backend}`);
    }
  }
}

async function fetchAll(ctx: EngineContext, model: OnnxModel, options: LoadOptions): Promise<Map<string, Uint8Array>> {
  const total = model.files.reduce((sum, f) => sum + f.size, 0);
  const done = new Map<string, number>();
  const report = (file: ModelFile, loaded: number): void => {
    done.set(file.name, loaded);
    const loadedBytes = [...done.values()].reduce((a, b) => a + b, 0);
    options.onProgress?.({ modelId: model.id, phase: 'download', loadedBytes, totalBytes: total });
  };
  const entries = await Promise.all(
    model.files.map(async (file) => {
      const bytes = await ctx.store.getFile(file, {
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (p) => report(file, p.loadedBytes),
      });
      return [file.name, bytes] as const;
    }),
  );
  return new Map(entries);
}
