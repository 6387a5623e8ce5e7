/**
 * The worker's API, a plain typed object exposed to the page with comlink. Long calls take a
 * call id the page can cancel with {@link WorkerApi.cancel}, since an AbortSignal cannot cross
 * `postMessage`.
 */
import type { StreamChunk } from '../protocol/jobs.ts';
import type { GpuBenchmark, GpuInfo } from './gpu/types.ts';
import type { GpuDeviceManager } from './gpu/device.ts';
import { runGpuBenchmark } from './gpu/bench.ts';
import { AbortedError, EngineError, WebGPUUnavailableError } from '../protocol/errors.ts';
import type { LoadProgress } from './engines/types.ts';
import type { LoadedSummary, ModelSummary, RunOutcome, Runtime, RuntimeStatus } from './runtime.ts';
import type { JobKind } from '../protocol/manifest.ts';
import type { Contributor, ContributorStatus } from './network/contributor.ts';
import type { DeviceIdentity } from './network/identity.ts';
import { parseControls, parseSignals, type Controls, type Signals } from './controls/rules.ts';
import { DEFAULT_SAVED, IndexedDbControlsStore, type ControlsStore, type SavedControls } from './controls/store.ts';

/** How the worker takes part in the network. */
export interface ContributeOptions {
  /** Base URL of the coordinator (http or https); the WebSocket goes to `/v1/contributor`. */
  coordinatorUrl: string;
  /** Jobs run at once. */
  slots?: number;
  /** Job kinds the contributor allows; by default the saved controls' consent (all kinds until the owner changes it). */
  consent?: JobKind[];
  /** Wallet session token from `POST /v1/wallet/proof`, sent in `hello.session`. */
  session?: string;
  /** The device label its owner gave it (kiosk and lab fleets), sent in `status`. */
  label?: string;
}

/** Platform parts the API uses, replaceable in tests. */
export interface WorkerApiDeps {
  /** Where the owner's rules and the wish to contribute are kept; IndexedDB by default. */
  controlsStore?: () => ControlsStore;
  /** Web Locks; `navigator.locks` by default, null where missing. */
  locks?: () => LockManager | null;
}

/** Held while contributing: Chrome does not freeze a hidden tab that holds a Web Lock. */
export const CONTRIBUTING_LOCK = 'spinneret-contributing';

const CLIENT = { name: 'spinneret-web', version: '0.1.0' };

/** `http(s)://host/base` → `ws(s)://host/base/v1/contributor`. */
export function contributorSocketUrl(coordinatorUrl: string): string {
  const url = new URL(coordinatorUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : url.protocol === 'http:' ? 'ws:' : url.protocol;
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/contributor`;
  return url.href;
}

export interface CallOptions {
  /** Lets the page cancel this call with `cancel(callId)`. */
  callId?: string;
}

/** What the page tells the worker at start. */
export interface WorkerConfig {
  /** URL of the model manifest. */
  manifestUrl: string;
  /** Forces ONNX models onto one backend (comparisons and tests). */
  backend?: 'webgpu' | 'wasm';
  /** GPU memory the contributor allows, MiB. */
  vramMiB?: number;
}

export interface RuntimeParts {
  runtime: Runtime;
  gpu: GpuDeviceManager | null;
}

/**
 * The network side (the contributor loop, the device keys, HPKE) loads on first use: a page
 * that only looks at its GPU and estimate does not download it.
 */
const network = () => Promise.all([import('./network/contributor.ts'), import('./network/identity.ts')]);

async function deviceIdentity(): Promise<DeviceIdentity> {
  const [, { IndexedDbKeyStore, loadOrCreateIdentity }] = await network();
  return loadOrCreateIdentity(new IndexedDbKeyStore());
}

export function createWorkerApi(build: (config: WorkerConfig) => RuntimeParts, deps: WorkerApiDeps = {}) {
  let parts: RuntimeParts | null = null;
  let contributor: Contributor | null = null;
  /** The config the runtime was built with; its `vramMiB` follows the owner's GPU memory cap. */
  let runtimeConfig: WorkerConfig | null = null;
  let store: ControlsStore | null = null;
  let saved: Promise<SavedControls> | null = null;
  let signals: Signals = parseSignals({});
  const watchers = new Set<(status: ContributorStatus) => void>();
  let releaseLock: (() => void) | null = null;
  const controlsStore = (): ControlsStore => (store ??= deps.controlsStore?.() ?? new IndexedDbControlsStore());
  // Storage denied (private browsing): the defaults hold for this page.
  const loadSaved = (): Promise<SavedControls> =>
    (saved ??= controlsStore()
      .load()
      .catch(() => DEFAULT_SAVED));
  const save = async (change: Partial<SavedControls>): Promise<SavedControls> => {
    const next = { ...(await loadSaved()), ...change };
    saved = Promise.resolve(next);
    await controlsStore().save(next);
    return next;
  };
  const applyVramCap = (controls: Controls): void => {
    if (runtimeConfig !== null) runtimeConfig.vramMiB = controls.maxVramMiB ?? undefined;
  };
  const holdLock = (): void => {
    const locks = deps.locks ? deps.locks() : typeof navigator !== 'undefined' && 'locks' in navigator ? navigator.locks : null;
    if (locks === null || releaseLock !== null) return;
    const held = new Promise<void>((resolve) => (releaseLock = resolve));
    locks.request(CONTRIBUTING_LOCK, { mode: 'shared' }, () => held).catch(() => undefined);
  };
  const dropLock = (): void => {
    releaseLock?.();
    releaseLock = null;
  };
  const need = (): RuntimeParts => {
    if (parts === null) throw new EngineError('The worker is not initialised. Call init(config) first.');
    return parts;
  };
  const calls = new Map<string, AbortController>();
  const track = <T>(callId: string | undefined, body: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const controller = new AbortController();
    if (callId !== undefined) calls.set(callId, controller);
    return body(controller.signal).finally(() => callId !== undefined && calls.delete(callId));
  };

  const api = {
    /** Loads the manifest and probes the GPU. */
    async init(config: WorkerConfig): Promise<RuntimeStatus> {
      if (parts === null) {
        runtimeConfig = { ...config };
        const { controls } = await loadSaved().catch(() => ({ controls: null }));
        if (controls?.maxVramMiB != null) runtimeConfig.vramMiB = controls.maxVramMiB;
        parts = build(runtimeConfig);
      }
      await parts.runtime.init();
      return parts.runtime.status();
    },

    status(): RuntimeStatus {
      return need().runtime.status();
    },

    gpuInfo(): GpuInfo | null {
      return need().runtime.status().gpu;
    },

    /** Runs the WGSL matmul and copy kernels, each checked against a CPU reference. */
    async benchmark(options: { matmulSize?: number; copyBytes?: number } = {}): Promise<GpuBenchmark> {
      const { runtime, gpu } = need();
      if (gpu === null || runtime.status().gpu === null) throw new WebGPUUnavailableError('no WebGPU adapter to benchmark');
      return runGpuBenchmark(await gpu.device(), options);
    },

    models(): Promise<ModelSummary[]> {
      return need().runtime.models();
    },

    loaded(): Promise<LoadedSummary[]> {
      return need().runtime.loadedModels();
    },

    /** Loads a model; `onProgress` must be wrapped with comlink's `proxy()`. */
    async load(modelId: string, onProgress?: (p: LoadProgress) => void, options: CallOptions = {}): Promise<LoadedSummary> {
      return track(options.callId, async (signal) => {
        const model = await need().runtime.load(modelId, { signal, ...(onProgress ? { onProgress } : {}) });
        return { modelId: model.modelId, backend: model.backend, memoryBytes: model.memoryBytes() };
      });
    },

    /** Validates and runs a job; `onChunk` (a comlink `proxy()`) receives streamed pieces. */
    run(request: unknown, onChunk?: (chunk: StreamChunk) => void, options: CallOptions = {}): Promise<RunOutcome> {
      return track(options.callId, (signal) => need().runtime.run(request, { signal, ...(onChunk ? { onChunk } : {}) }));
    },

    cancel(callId: string): boolean {
      const controller = calls.get(callId);
      controller?.abort(new AbortedError(`Call ${callId}`));
      return controller !== undefined;
    },

    unload(modelId: string): Promise<void> {
      return need().runtime.unload(modelId);
    },

    /** Unloads and removes the cached files; returns the bytes freed. */
    evict(modelId: string): Promise<number> {
      return need().runtime.evict(modelId);
    },

    /**
     * Starts serving the network from this worker (the job loop lives here, not on the page,
     * so a hidden tab keeps working). `onStatus` (a comlink `proxy()`) hears every change.
     */
    async startContributing(options: ContributeOptions, onStatus?: (status: ContributorStatus) => void): Promise<ContributorStatus> {
      const { runtime } = need();
      if (contributor !== null) await contributor.stop({ drain: false });
      const [{ Contributor }] = await network();
      const identity = await deviceIdentity();
      // Not saved (storage denied): contributing still starts, it just will not resume after a reload.
      const { controls, remotePaused } = await save({ contributing: true }).catch(() => loadSaved());
      contributor = new Contributor({
        coordinatorUrl: contributorSocketUrl(options.coordinatorUrl),
        runtime,
        identity,
        slots: options.slots ?? 1,
        controls: options.consent === undefined ? controls : { ...controls, consent: options.consent },
        signals,
        remotePaused,
        onRemotePause: (paused) => void save({ remotePaused: paused }).catch(() => undefined),
        client: CLIENT,
        ...(options.session !== undefined && { session: options.session }),
        ...(options.label !== undefined && { label: options.label }),
      });
      if (onStatus !== undefined) contributor.onStatus(onStatus);
      for (const watcher of watchers) contributor.onStatus(watcher);
      holdLock();
      contributor.start();
      return contributor.status();
    },

    /**
     * Starts contributing when the owner had started and not explicitly stopped (a reloaded,
     * discarded or restored tab); otherwise does nothing. Returns the status, or null when not contributing.
     */
    async resumeContributing(
      options: ContributeOptions,
      onStatus?: (status: ContributorStatus) => void,
    ): Promise<ContributorStatus | null> {
      if (contributor !== null) return contributor.status();
      if (!(await loadSaved()).contributing) return null;
      return api.startContributing(options, onStatus);
    },

    /** Whether the owner wants this device to contribute (Start pressed, no Stop since). */
    async wantsToContribute(): Promise<boolean> {
      return (await loadSaved()).contributing;
    },

    /**
     * A wallet proven (or disconnected: undefined) while contributing: the running contributor
     * says hello again with it at once (after the jobs running now), with no restart.
     */
    setSession(session: string | undefined): void {
      contributor?.setSession(session);
    },

    /**
     * Calls `onStatus` (a comlink `proxy()`) with every status of the contributor running now
     * and of any started later (also by {@link resumeContributing}); returns the status now.
     */
    watchContributor(onStatus: (status: ContributorStatus) => void): ContributorStatus | null {
      watchers.add(onStatus);
      contributor?.onStatus(onStatus);
      return contributor?.status() ?? null;
    },

    /** The owner's saved rules. */
    async controls(): Promise<Controls> {
      return (await loadSaved()).controls;
    },

    /**
     * Changes and saves the owner's rules (a partial update, checked: bad values throw
     * InvalidInputError). A running contributor applies them at once.
     */
    async setControls(update: Partial<Controls>): Promise<Controls> {
      const controls = parseControls(update, (await loadSaved()).controls);
      const written = save({ controls });
      // Applied even when it cannot be saved; the StorageError then tells the owner it will not last.
      applyVramCap(controls);
      contributor?.setControls(controls);
      await written;
      return controls;
    },

    /** What the page knows and the worker cannot see: visibility, battery, idle (a partial update). */
    setSignals(update: Partial<Signals>): void {
      signals = parseSignals(update, signals);
      contributor?.setSignals(signals);
    },

    /** This device's identity key (Ed25519, base64url): what wallet proof payloads are bound to. */
    async deviceKey(): Promise<string> {
      return (await deviceIdentity()).identityKey;
    },

    /** Signs an enrollment with fleet token `token` (`POST /v1/enroll`): proves this device holds its identity key. */
    async signEnrollment(token: string): Promise<{ identityKey: string; signature: string }> {
      const [identity, [, { signEnrollment }]] = await Promise.all([deviceIdentity(), network()]);
      return signEnrollment(identity, token);
    },

    /**
     * The owner's explicit Stop: takes no more jobs, forgets the wish to contribute (a reload no
     * longer resumes) and lets go of the Web Lock; with `drain` (the default) running jobs finish first.
     */
    async stopContributing(drain = true): Promise<ContributorStatus | null> {
      await save({ contributing: false }).catch(() => undefined);
      dropLock();
      if (contributor === null) return null;
      await contributor.stop({ drain });
      return contributor.status();
    },

    contributorStatus(): ContributorStatus | null {
      return contributor?.status() ?? null;
    },

    /**
     * Destroys the current GPU device, as a driver reset would. The runtime notices the loss,
     * makes a new device and reloads models on next use. For the recovery test and the
     * "simulate GPU loss" button.
     */
    async loseDevice(): Promise<void> {
      const { gpu } = need();
      if (gpu === null) throw new WebGPUUnavailableError('no WebGPU device to lose');
      (await gpu.device()).destroy();
    },
  };
  return api;
}

export type WorkerApi = ReturnType<typeof createWorkerApi>;
