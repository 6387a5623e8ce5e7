/**
 * The worker's API, one {@link WorkerApi} object exposed to the page with comlink: its public
 * methods are all the page can call. Long calls take a call id the page can cancel with
 * {@link WorkerApi.cancel}, since an AbortSignal cannot cross `postMessage`. The owner's saved
 * rules ({@link SavedState}), the Web Lock held while contributing ({@link ContributingLock})
 * and the cancellable calls ({@link CancellableCalls}) each have a class of their own.
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
  vramMiB?: number | undefined;
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

/** The owner's saved rules and wish to contribute, read once and written through. */
class SavedState {
  readonly #open: () => ControlsStore;
  #store: ControlsStore | null = null;
  #saved: Promise<SavedControls> | null = null;

  constructor(open: () => ControlsStore) {
    this.#open = open;
  }

  /** What was saved; the defaults where storage is denied (private browsing) for this page. */
  load(): Promise<SavedControls> {
    return (this.#saved ??= this.#controlsStore()
      .load()
      .catch(() => DEFAULT_SAVED));
  }

  /** Applies `change` at once and saves it; rejects (still applied) when it cannot be saved. */
  async save(change: Partial<SavedControls>): Promise<SavedControls> {
    const next = { ...(await this.load()), ...change };
    this.#saved = Promise.resolve(next);
    await this.#controlsStore().save(next);
    return next;
  }

  #controlsStore(): ControlsStore {
    return (this.#store ??= this.#open());
  }
}

/** The shared Web Lock held while contributing. */
class ContributingLock {
  readonly #locks: () => LockManager | null;
  #release: (() => void) | null = null;

  constructor(locks: () => LockManager | null) {
    this.#locks = locks;
  }

  hold(): void {
    const locks = this.#locks();
    if (locks === null || this.#release !== null) return;
    const held = new Promise<void>((resolve) => (this.#release = resolve));
    locks.request(CONTRIBUTING_LOCK, { mode: 'shared' }, () => held).catch(() => undefined);
  }

  drop(): void {
    this.#release?.();
    this.#release = null;
  }
}

/** Long calls by the page's call id, so that the page can cancel them. */
class CancellableCalls {
  readonly #calls = new Map<string, AbortController>();

  /** Runs `body` with a signal that {@link cancel} of `callId` aborts. */
  track<T>(callId: string | undefined, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    if (callId !== undefined) this.#calls.set(callId, controller);
    return body(controller.signal).finally(() => callId !== undefined && this.#calls.delete(callId));
  }

  cancel(callId: string): boolean {
    const controller = this.#calls.get(callId);
    controller?.abort(new AbortedError(`Call ${callId}`));
    return controller !== undefined;
  }
}

const navigatorLocks = (): LockManager | null => (typeof navigator !== 'undefined' && 'locks' in navigator ? navigator.locks : null);

export class WorkerApi {
  readonly #build: (config: WorkerConfig) => RuntimeParts;
  readonly #saved: SavedState;
  readonly #lock: ContributingLock;
  readonly #calls = new CancellableCalls();
  #parts: RuntimeParts | null = null;
  #contributor: Contributor | null = null;
  /** The config the runtime was built with; its `vramMiB` follows the owner's GPU memory cap. */
  #runtimeConfig: WorkerConfig | null = null;
  #signals: Signals = parseSignals({});
  readonly #watchers = new Set<(status: ContributorStatus) => void>();

  constructor(build: (config: WorkerConfig) => RuntimeParts, deps: WorkerApiDeps = {}) {
    this.#build = build;
    this.#saved = new SavedState(deps.controlsStore ?? (() => new IndexedDbControlsStore()));
    this.#lock = new ContributingLock(deps.locks ?? navigatorLocks);
  }

  /** Loads the manifest and probes the GPU. */
  async init(config: WorkerConfig): Promise<RuntimeStatus> {
    if (this.#parts === null) {
      const runtimeConfig: WorkerConfig = { ...config };
      this.#runtimeConfig = runtimeConfig;
      const { controls } = await this.#saved.load().catch(() => ({ controls: null }));
      if (controls?.maxVramMiB != null) runtimeConfig.vramMiB = controls.maxVramMiB;
      this.#parts = this.#build(runtimeConfig);
    }
    await this.#parts.runtime.init();
    return this.#parts.runtime.status();
  }

  status(): RuntimeStatus {
    return this.#need().runtime.status();
  }

  gpuInfo(): GpuInfo | null {
    return this.#need().runtime.status().gpu;
  }

  /** Runs the WGSL matmul and copy kernels, each checked against a CPU reference. */
  async benchmark(options: { matmulSize?: number; copyBytes?: number } = {}): Promise<GpuBenchmark> {
    const { runtime, gpu } = this.#need();
    if (gpu === null || runtime.status().gpu === null) throw new WebGPUUnavailableError('no WebGPU adapter to benchmark');
    return runGpuBenchmark(await gpu.device(), options);
  }

  models(): Promise<ModelSummary[]> {
    return this.#need().runtime.models();
  }

  loaded(): Promise<LoadedSummary[]> {
    return this.#need().runtime.loadedModels();
  }

  /** Loads a model; `onProgress` must be wrapped with comlink's `proxy()`. */
  async load(modelId: string, onProgress?: (p: LoadProgress) => void, options: CallOptions = {}): Promise<LoadedSummary> {
    return this.#calls.track(options.callId, async (signal) => {
      const model = await this.#need().runtime.load(modelId, { signal, ...(onProgress ? { onProgress } : {}) });
      return { modelId: model.modelId, backend: model.backend, memoryBytes: model.memoryBytes() };
    });
  }

  /** Validates and runs a job; `onChunk` (a comlink `proxy()`) receives streamed pieces. */
  run(request: unknown, onChunk?: (chunk: StreamChunk) => void, options: CallOptions = {}): Promise<RunOutcome> {
    return this.#calls.track(options.callId, (signal) => this.#need().runtime.run(request, { signal, ...(onChunk ? { onChunk } : {}) }));
  }

  cancel(callId: string): boolean {
    return this.#calls.cancel(callId);
  }

  unload(modelId: string): Promise<void> {
    return this.#need().runtime.unload(modelId);
  }

  /** Unloads and removes the cached files; returns the bytes freed. */
  evict(modelId: string): Promise<number> {
    return this.#need().runtime.evict(modelId);
  }

  /**
   * Starts serving the network from this worker (the job loop lives here, not on the page,
   * so a hidden tab keeps working). `onStatus` (a comlink `proxy()`) hears every change.
   */
  async startContributing(options: ContributeOptions, onStatus?: (status: ContributorStatus) => void): Promise<ContributorStatus> {
    const { runtime } = this.#need();
    if (this.#contributor !== null) await this.#contributor.stop({ drain: false });
    const [{ Contributor }] = await network();
    const identity = await deviceIdentity();
    // Not saved (storage denied): contributing still starts, it just will not resume after a reload.
    const { controls, remotePaused } = await this.#saved.save({ contributing: true }).catch(() => this.#saved.load());
    const contributor = new Contributor({
      coordinatorUrl: contributorSocketUrl(options.coordinatorUrl),
      runtime,
      identity,
      slots: options.slots ?? 1,
      controls: options.consent === undefined ? controls : { ...controls, consent: options.consent },
      signals: this.#signals,
      remotePaused,
      onRemotePause: (paused) => void this.#saved.save({ remotePaused: paused }).catch(() => undefined),
      client: CLIENT,
      ...(options.session !== undefined && { session: options.session }),
      ...(options.label !== undefined && { label: options.label }),
    });
    this.#contributor = contributor;
    if (onStatus !== undefined) contributor.onStatus(onStatus);
    for (const watcher of this.#watchers) contributor.onStatus(watcher);
    this.#lock.hold();
    contributor.start();
    return contributor.status();
  }

  /**
   * Starts contributing when the owner had started and not explicitly stopped (a reloaded,
   * discarded or restored tab); otherwise does nothing. Returns the status, or null when not contributing.
   */
  async resumeContributing(options: ContributeOptions, onStatus?: (status: ContributorStatus) => void): Promise<ContributorStatus | null> {
    if (this.#contributor !== null) return this.#contributor.status();
    if (!(await this.#saved.load()).contributing) return null;
    return this.startContributing(options, onStatus);
  }

  /** Whether the owner wants this device to contribute (Start pressed, no Stop since). */
  async wantsToContribute(): Promise<boolean> {
    return (await this.#saved.load()).contributing;
  }

  /**
   * A wallet proven (or disconnected: undefined) while contributing: the running contributor
   * says hello again with it at once (after the jobs running now), with no restart.
   */
  setSession(session: string | undefined): void {
    this.#contributor?.setSession(session);
  }

  /**
   * Calls `onStatus` (a comlink `proxy()`) with every status of the contributor running now
   * and of any started later (also by {@link resumeContributing}); returns the status now.
   */
  watchContributor(onStatus: (status: ContributorStatus) => void): ContributorStatus | null {
    this.#watchers.add(onStatus);
    this.#contributor?.onStatus(onStatus);
    return this.#contributor?.status() ?? null;
  }

  /** The owner's saved rules. */
  async controls(): Promise<Controls> {
    return (await this.#saved.load()).controls;
  }

  /**
   * Changes and saves the owner's rules (a partial update, checked: bad values throw
   * InvalidInputError). A running contributor applies them at once.
   */
  async setControls(update: Partial<Controls>): Promise<Controls> {
    const controls = parseControls(update, (await this.#saved.load()).controls);
    const written = this.#saved.save({ controls });
    // Applied even when it cannot be saved; the StorageError then tells the owner it will not last.
    if (this.#runtimeConfig !== null) this.#runtimeConfig.vramMiB = controls.maxVramMiB ?? undefined;
    this.#contributor?.setControls(controls);
    await written;
    return controls;
  }

  /** What the page knows and the worker cannot see: visibility, battery, idle (a partial update). */
  setSignals(update: Partial<Signals>): void {
    this.#signals = parseSignals(update, this.#signals);
    this.#contributor?.setSignals(this.#signals);
  }

  /** This device's identity key (Ed25519, base64url): what wallet proof payloads are bound to. */
  async deviceKey(): Promise<string> {
    return (await deviceIdentity()).identityKey;
  }

  /** Signs an enrollment with fleet token `token` (`POST /v1/enroll`): proves this device holds its identity key. */
  async signEnrollment(token: string): Promise<{ identityKey: string; signature: string }> {
    const [identity, [, { signEnrollment }]] = await Promise.all([deviceIdentity(), network()]);
    return signEnrollment(identity, token);
  }

  /**
   * The owner's explicit Stop: takes no more jobs, forgets the wish to contribute (a reload no
   * longer resumes) and lets go of the Web Lock; with `drain` (the default) running jobs finish first.
   */
  async stopContributing(drain = true): Promise<ContributorStatus | null> {
    await this.#saved.save({ contributing: false }).catch(() => undefined);
    this.#lock.drop();
    if (this.#contributor === null) return null;
    await this.#contributor.stop({ drain });
    return this.#contributor.status();
  }

  contributorStatus(): ContributorStatus | null {
    return this.#contributor?.status() ?? null;
  }

  /**
   * Destroys the current GPU device, as a driver reset would. The runtime notices the loss,
   * makes a new device and reloads models on next use. For the recovery test and the
   * "simulate GPU loss" button.
   */
  async loseDevice(): Promise<void> {
    const { gpu } = this.#need();
    if (gpu === null) throw new WebGPUUnavailableError('no WebGPU device to lose');
    (await gpu.device()).destroy();
  }

  #need(): RuntimeParts {
    if (this.#parts === null) throw new EngineError('The worker is not initialised. Call init(config) first.');
    return this.#parts;
  }
}
