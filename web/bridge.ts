/** Owns the worker's lifecycle and gives the page its typed API. */
import { wrap, type Remote } from 'comlink';
import { installErrorTransfer } from '../protocol/comlink-errors.ts';
import type { WorkerApi } from '../worker/api.ts';

export interface WorkerBridge {
  api: Remote<WorkerApi>;
  terminate(): void;
}

export function startWorker(): WorkerBridge {
  installErrorTransfer();
  // Written inline so that vite recognises and bundles the worker.
  const worker = new Worker(new URL('../worker/main.ts', import.meta.url), { type: 'module', name: 'spinneret-contributor' });
  return { api: wrap<WorkerApi>(worker), terminate: () => worker.terminate() };
}
