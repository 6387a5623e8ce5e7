/**
 * Owns the worker's one GPUDevice: creates it on first use and recreates it after a loss.
 *
 * A lost device cannot be revived, and its adapter cannot make another device, so recovery
 * re-probes `navigator.gpu` for a fresh adapter. Engines hold GPU buffers tied to one device;
 * they watch {@link GpuDeviceManager.onRestored} (or compare `generation`) to reload.
 */
import { DeviceLostError, SpinneretError, WebGPUUnavailableError } from '../../protocol/errors.ts';
import { defaultGpu, probeGpu } from './probe.ts';
import type { GpuInfo } from './types.ts';

export interface GpuDeviceManagerOptions {
  /** The WebGPU entry point; defaults to `navigator.gpu`. Tests pass a fake. */
  gpu?: GPU | undefined;
  /** Features requested when the adapter offers them; others are silently left out. */
  optionalFeatures?: readonly GPUFeatureName[];
  /**
   * Eager recovery stops when more than `losses` devices are lost within `windowMs`
   * milliseconds (a driver that keeps crashing); `device()` then rejects with
   * DeviceLostError until the manager is replaced. Default 3 losses in 60 000 ms.
   */
  recoveryLimit?: { losses: number; windowMs: number };
  /** Milliseconds since epoch; injectable for tests. */
  now?: () => number;
}

/** Passed to `onLost` listeners. */
export interface DeviceLossInfo {
  /**
   * `destroyed` when something other than `dispose()` called `destroy()`; `unknown` for a
   * driver reset, a GPU process crash, or the browser reclaiming the GPU.
   */
  reason: GPUDeviceLostReason;
  /** The browser's words (ours for a foreign `destroy()`); may be empty. */
  message: string;
  /** Generation of the device that was lost. */
  generation: number;
  /** False when the loss limit was hit and no new device is coming. */
  recovering: boolean;
}

/** Passed to `onRestored` listeners once a replacement device exists. */
export interface DeviceRestoredInfo {
  /** Generation of the new device. */
  generation: number;
  info: GpuInfo;
}

type Listener<T> = (event: T) => void;

/** Features worth having for models; `shader-f16` halves weight memory where offered. */
export const DEFAULT_OPTIONAL_FEATURES: readonly GPUFeatureName[] = ['shader-f16'];

export class GpuDeviceManager {
  private readonly gpu: GPU | undefined;
  private readonly optionalFeatures: readonly GPUFeatureName[];
  private readonly recoveryLimit: { losses: number; windowMs: number };
  private readonly now: () => number;
  /** The device being made or in use; shared by every concurrent caller. */
  private current: Promise<GPUDevice> | null = null;
  private live: GPUDevice | null = null;
  private gpuInfo: GpuInfo | null = null;
  private gen = 0;
  private lossTimes: number[] = [];
  private disposed = false;
  private readonly lostListeners = new Set<Listener<DeviceLossInfo>>();
  private readonly restoredListeners = new Set<Listener<DeviceRestoredInfo>>();

  constructor(options: GpuDeviceManagerOptions = {}) {
    this.gpu = 'gpu' in options ? options.gpu : defaultGpu();
    this.optionalFeatures = options.optionalFeatures ?? DEFAULT_OPTIONAL_FEATURES;
    this.recoveryLimit = options.recoveryLimit ?? { losses: 3, windowMs: 60_000 };
    this.now = options.now ?? Date.now;
  }

  /**
   * Counts devices made: 0 before the first, 1 for the first, +1 per replacement. Anything
   * created on a device of an older generation is gone.
   */
  get generation(): number {
    return this.gen;
  }

  /** The adapter behind the current device, or null before the first device. */
  info(): GpuInfo | null {
    return this.gpuInfo;
  }

  /**
   * The current device, created on first use and recreated after a loss. Rejects with
   * WebGPUUnavailableError when no adapter can be had (a later call tries again), or
   * DeviceLostError once the loss limit is hit.
   */
  device(): Promise<GPUDevice> {
    if (this.disposed) return Promise.reject(disposedError());
    this.current ??= this.create();
    return this.current;
  }

  /** Called on each loss not caused by `dispose()`. Returns an unsubscribe function. */
  onLost(listener: Listener<DeviceLossInfo>): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** Called when a replacement device is ready. Returns an unsubscribe function. */
  onRestored(listener: Listener<DeviceRestoredInfo>): () => void {
    this.restoredListeners.add(listener);
    return () => this.restoredListeners.delete(listener);
  }

  /** Destroys the device without recovering; later `device()` calls reject. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.lostListeners.clear();
    this.restoredListeners.clear();
    this.live?.destroy();
    this.live = null;
    // A device still being created is destroyed by create() when it arrives.
    this.current?.catch(() => undefined);
    this.current = null;
  }

  private create(): Promise<GPUDevice> {
    const made = this.makeDevice();
    made.catch(() => {
      // Let the next device() call try again (e.g. the GPU process was restarting).
      if (this.current === made) this.current = null;
    });
    return made;
  }

  private async makeDevice(): Promise<GPUDevice> {
    const { adapter, info } = await probeGpu(this.gpu);
    const requiredFeatures = this.optionalFeatures.filter((f) => adapter.features.has(f));
    const device = await requestDevice(adapter, {
      label: `spinneret-${this.gen + 1}`,
      requiredFeatures,
      // The defaults (256 MiB buffers, 128 MiB bindings) are too small for model weights.
      requiredLimits: {
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
        maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
      },
    });
    if (this.disposed) {
      device.destroy();
      throw disposedError();
    }
    this.gen += 1;
    this.live = device;
    this.gpuInfo = info;
    const generation = this.gen;
    this.watch(device, generation);
    // Every device after the first replaces a lost one, also when an earlier try failed.
    if (generation > 1) this.emit(this.restoredListeners, { generation, info });
    return device;
  }

  private watch(device: GPUDevice, generation: number): void {
    // `lost` settles a task or more after destroy(); without this, device() calls made right
    // after someone's destroy() would still get the dead device.
    const destroy = device.destroy.bind(device);
    device.destroy = () => {
      destroy();
      this.handleLoss(device, generation, { reason: 'destroyed', message: 'destroy() was called outside dispose()' });
    };
    void device.lost.then((lost) => this.handleLoss(device, generation, lost));
  }

  /** Runs once per device: for whichever comes first of its `lost` and a foreign destroy(). */
  private handleLoss(device: GPUDevice, generation: number, lost: Pick<GPUDeviceLostInfo, 'reason' | 'message'>): void {
    if (this.disposed || device !== this.live) return;
    this.live = null;
    const now = this.now();
    this.lossTimes = [...this.lossTimes.filter((t) => now - t < this.recoveryLimit.windowMs), now];
    const recovering = this.lossTimes.length <= this.recoveryLimit.losses;
    // Replace `current` before telling anyone, so a listener's device() call shares recovery.
    if (recovering) {
      this.current = this.create();
      this.current.catch(() => undefined); // Surfaces through device(); nobody may be waiting now.
    } else {
      const gaveUp = new DeviceLostError(
        `lost ${this.lossTimes.length} times within ${this.recoveryLimit.windowMs / 1000} s; not recreating it — reload the page`,
      );
      this.current = Promise.reject(gaveUp);
      this.current.catch(() => undefined);
    }
    this.emit(this.lostListeners, { reason: lost.reason, message: lost.message, generation, recovering });
  }

  private emit<T>(listeners: Set<Listener<T>>, event: T): void {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (err) {
        // One broken listener must not stop recovery or the others.
        console.error('GpuDeviceManager listener failed', err);
      }
    }
  }
}

async function requestDevice(adapter: GPUAdapter, descriptor: GPUDeviceDescriptor): Promise<GPUDevice> {
  try {
    return await adapter.requestDevice(descriptor);
  } catch (err) {
    throw new WebGPUUnavailableError(`requestDevice failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function disposedError(): SpinneretError {
  return new SpinneretError('INTERNAL', 'The GPU device manager was disposed; create a new one.');
}
