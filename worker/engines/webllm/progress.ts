/** web-llm's load reports as Spinneret's {@link LoadProgress}. */
import type { InitProgressReport } from '@mlc-ai/web-llm';
import type { LoadProgress } from '../types.ts';

const MiB = 1024 * 1024;

/**
 * Reads web-llm 0.2.86's report texts (tvmjs `fetchTensorCacheInternal`,
 * `asyncLoadWebGPUPipelines`, `reloadInternal`). Shard downloads are `download`; copying
 * weights to the GPU and compiling shaders are both `compile`; the final report is `ready`.
 * Bytes are rebuilt from the rounded-up MiB count in the text, so they are approximate.
 */
export function progressFromReport(modelId: string, report: InitProgressReport): LoadProgress {
  const { text, progress } = report;
  if (text.startsWith('Finish loading')) return { modelId, phase: 'ready', loadedBytes: 0, totalBytes: 0, text };
  const bytes = /(\d+)MB (fetched|loaded)/.exec(text);
  const phase = text.startsWith('Fetching param cache') || text.startsWith('Start to fetch params') ? 'download' : 'compile';
  if (bytes?.[1] === undefined) return { modelId, phase, loadedBytes: 0, totalBytes: 0, text };
  const loadedBytes = Number(bytes[1]) * MiB;
  const totalBytes = progress > 0 ? Math.max(loadedBytes, Math.round(loadedBytes / progress)) : 0;
  return { modelId, phase, loadedBytes, totalBytes, text };
}
