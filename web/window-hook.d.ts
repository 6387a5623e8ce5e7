// The page's hook for the browser tests and benchmarks (set in web/main.ts).
import type { proxy } from 'comlink';
import type { SpinneretError } from '../protocol/errors.ts';
import type { WorkerBridge, startWorker } from './bridge.ts';

declare global {
  interface Window {
    spinneret?: {
      bridge: WorkerBridge;
      manifestUrl: string;
      startWorker: typeof startWorker;
      proxy: typeof proxy;
      SpinneretError: typeof SpinneretError;
    };
  }
}
