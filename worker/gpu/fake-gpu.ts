/**
 * A test double of `navigator.gpu` for Node unit tests: adapters and devices with real
 * `lost` promises, and nothing that computes. It keeps WebGPU's rule that an adapter gives
 * one device only, so code that reuses an adapter after a loss fails here as in Chrome.
 */

/** What a fake adapter reports; the defaults look like SwiftShader. */
export interface FakeAdapterSpec {
  vendor: string;
  architecture: string;
  features: string[];
  /** Set on `adapter.info` (Chrome ≥ 131) unless `fallbackOnAdapter` is true. */
  isFallbackAdapter: boolean;
  /** Put `isFallbackAdapter` on the adapter itself, as Chrome < 131 did. */
  fallbackOnAdapter: boolean;
  limits: Record<string, number>;
}

export const SWIFTSHADER_LIKE: FakeAdapterSpec = {
  vendor: 'google',
  architecture: 'swiftshader',
  features: ['timestamp-query', 'subgroups', 'float32-filterable'],
  isFallbackAdapter: true,
  fallbackOnAdapter: false,
  limits: {
    maxBufferSize: 1024 ** 3,
    maxStorageBufferBindingSize: 1024 ** 3,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupSizeX: 1024,
    maxStorageBuffersPerShaderStage: 10,
    maxComputeWorkgroupsPerDimension: 65535,
  },
};

export class FakeDevice {
  readonly lost: Promise<GPUDeviceLostInfo>;
  destroyed = false;
  private resolveLost: (info: GPUDeviceLostInfo) => void = () => undefined;

  constructor(
    readonly label: string,
    readonly descriptor: GPUDeviceDescriptor,
  ) {
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
  }

  /** Like GPUDevice.destroy(): the device is lost with reason `destroyed`. */
  destroy(): void {
    this.destroyed = true;
    this.lose('destroyed', 'Device was destroyed.');
  }

  /** Simulates a driver reset or GPU process crash. */
  lose(reason: GPUDeviceLostReason = 'unknown', message = 'GPU process crashed'): void {
    // The `lost` object is branded in @webgpu/types; the fake carries only its two fields.
    this.resolveLost({ reason, message } as GPUDeviceLostInfo);
  }
}

export class FakeAdapter {
  readonly features: Set<string>;
  readonly limits: Record<string, number>;
  readonly info: Record<string, unknown>;
  readonly isFallbackAdapter: boolean | undefined;
  consumed = false;

  constructor(
    spec: FakeAdapterSpec,
    private readonly onDevice: (device: FakeDevice) => void,
    private readonly deviceDelayMs: number,
  ) {
    this.features = new Set(spec.features);
    this.limits = { ...spec.limits };
    this.info = {
      vendor: spec.vendor,
      architecture: spec.architecture,
      device: '',
      description: `${spec.vendor} fake`,
    };
    if (spec.fallbackOnAdapter) this.isFallbackAdapter = spec.isFallbackAdapter;
    else this.info.isFallbackAdapter = spec.isFallbackAdapter;
  }

  async requestDevice(descriptor: GPUDeviceDescriptor = {}): Promise<FakeDevice> {
    if (this.consumed) throw new Error('The adapter is consumed: an adapter gives one device only.');
    this.consumed = true;
    for (const feature of descriptor.requiredFeatures ?? []) {
      if (!this.features.has(feature)) throw new TypeError(`Unsupported feature: ${feature}`);
    }
    for (const [name, value] of Object.entries(descriptor.requiredLimits ?? {})) {
      const max = this.limits[name];
      if (max === undefined || (value !== undefined && value > max)) throw new Error(`Limit ${name} too high`);
    }
    if (this.deviceDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.deviceDelayMs));
    const device = new FakeDevice(descriptor.label ?? '', descriptor);
    this.onDevice(device);
    return device;
  }
}

/** `navigator.gpu` stand-in. Queue `adapterResults` to script what requestAdapter does. */
export class FakeGpu {
  readonly devices: FakeDevice[] = [];
  readonly adapters: FakeAdapter[] = [];
  requestAdapterCalls = 0;
  /** The options of the latest requestAdapter call. */
  lastAdapterOptions: GPURequestAdapterOptions | undefined;
  /** Consumed front to back, one per requestAdapter call; empty means "an adapter". */
  readonly adapterResults: Array<'adapter' | 'null' | 'throw'> = [];

  constructor(
    private readonly spec: FakeAdapterSpec = SWIFTSHADER_LIKE,
    /** Delay inside requestDevice, ms, so tests can overlap calls with a recovery. */
    private readonly deviceDelayMs = 0,
  ) {}

  async requestAdapter(options?: GPURequestAdapterOptions): Promise<FakeAdapter | null> {
    this.requestAdapterCalls += 1;
    this.lastAdapterOptions = options;
    const result = this.adapterResults.shift() ?? 'adapter';
    if (result === 'null') return null;
    if (result === 'throw') throw new Error('GPU process unavailable');
    const adapter = new FakeAdapter(this.spec, (d) => this.devices.push(d), this.deviceDelayMs);
    this.adapters.push(adapter);
    return adapter;
  }

  /** The fake typed as the real thing; @webgpu/types brands make a structural match impossible. */
  asGpu(): GPU {
    return this as unknown as GPU;
  }
}
