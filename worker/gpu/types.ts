/** What the GPU probe learns about the adapter. Plain data: it crosses the worker boundary. */
export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters such as SwiftShader. */
  isFallbackAdapter: boolean;
  /** Sorted feature names, e.g. `shader-f16`, `subgroups`, `timestamp-query`. */
  features: string[];
  /** The adapter's limits that matter for models, bytes or counts. */
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxStorageBuffersPerShaderStage: number;
  };
}

/**
 * What the WebGPU device delivered, measured by `runGpuBenchmark` (bench.ts). Plain data: it crosses the worker boundary. Only produced when every
 * kernel's output matched its CPU reference; a wrong kernel throws instead of scoring.
 */
export interface GpuBenchmark {
  matmul: {
    /** C = A·B with A m×k and B k×n, row-major f32. */
    m: number;
    n: number;
    k: number;
    /** Timed dispatches after one warm-up. */
    iterations: number;
    /** Throughput, 10⁹ floating-point operations per second (2·m·n·k per dispatch). */
    gflops: number;
    /** Wall time per dispatch, milliseconds (submit to `onSubmittedWorkDone`, averaged). */
    msPerIteration: number;
    /** Largest |GPU − float64 reference| over all of C. */
    maxAbsError: number;
    /** The bound `maxAbsError` was checked against (absolute). */
    tolerance: number;
    /** Always true: a result outside `tolerance` throws instead. */
    ok: true;
  };
  copy: {
    /** Size of the source buffer, bytes. */
    bytes: number;
    /** Timed dispatches after one warm-up. */
    iterations: number;
    /** Bandwidth, 10⁹ bytes per second, counting each byte read and each byte written. */
    gbps: number;
    /** Wall time per dispatch, milliseconds. */
    msPerIteration: number;
    /** Always true: the copy is checked exactly, and a mismatch throws instead. */
    ok: true;
  };
  /** Wall time of the whole benchmark, milliseconds, including compiles and read-backs. */
  ms: number;
}
