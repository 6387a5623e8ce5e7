/** Builds the runtime with its real parts: Cache API store, GPU device manager, both engines. */
import type { RuntimeParts, WorkerConfig } from './api.ts';
import { GpuDeviceManager } from './gpu/device.ts';
import { CacheModelStore } from './models/cache-store.ts';
import { measureRuntimeDownload } from './models/runtime-download.ts';
import { OnnxEngine } from './engines/onnx/engine.ts';
import { WebLlmEngine } from './engines/webllm/engine.ts';
import { Runtime } from './runtime.ts';

/** Default GPU memory budget when the contributor has set none, MiB. */
const DEFAULT_VRAM_MIB = 4096;

export function createRuntime(config: WorkerConfig): RuntimeParts {
  const gpu = 'gpu' in navigator ? new GpuDeviceManager() : null;
  const budget = (): number => (config.vramMiB ?? DEFAULT_VRAM_MIB) * 1024 * 1024;
  const runtime = new Runtime({
    manifestUrl: config.manifestUrl,
    store: new CacheModelStore(),
    gpu,
    engines: (ctx) => [
      new OnnxEngine(ctx, { vramBudgetBytes: budget, forceBackend: () => config.backend }),
      new WebLlmEngine(ctx, { vramBudgetBytes: budget }),
    ],
    runtimeDownload: () => measureRuntimeDownload(self.location.origin),
  });
  return { runtime, gpu };
}
