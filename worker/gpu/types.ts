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
