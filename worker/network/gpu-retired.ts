/**
 * A GPU the runtime gave up on (`RuntimeStatus.gpuRetired`: lost too often, not made again until the
 * tab reloads). The contributor stops offering GPU work: it sends capabilities without the adapter
 * and without the models that need it, and when no model is left it withdraws its slots
 * (`lease {slots: 0}`, `status {pausedBy: 'device'}`), so the coordinator leases it nothing instead
 * of watching every job fail.
 */
import type { GpuRetired, RuntimeStatus } from '../runtime.ts';
import type { DeviceLossReport } from './status.ts';

/** The part of the runtime that says whether the GPU was retired; `Runtime` fits. */
export interface RetiringRuntime {
  status(): Partial<Pick<RuntimeStatus, 'gpuRetired'>>;
  onDeviceLost?(listener: (report: DeviceLossReport) => void): () => void;
}

/**
 * Calls `onRetired` once: at once when the GPU is retired already (a contributor made after the
 * fact), else when the runtime reports it. Returns the unsubscribe function.
 */
export function watchRetiredGpu(runtime: RetiringRuntime, onRetired: (retired: GpuRetired) => void): () => void {
  let heard = false;
  const hear = (retired: GpuRetired | null | undefined): void => {
    if (heard || retired === null || retired === undefined) return;
    heard = true;
    onRetired(retired);
  };
  const off = runtime.onDeviceLost?.((report) => hear(report.gpuRetired)) ?? (() => undefined);
  hear(runtime.status().gpuRetired);
  return off;
}
