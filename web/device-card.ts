/**
 * "This device": the GPU adapter and its features, the benchmark (a WGSL matrix multiply and a
 * copy, each checked against the CPU) that the estimate starts from, how the estimate is worked
 * out, and the contributor's counts. The "simulate GPU loss" button exists only in development
 * builds.
 */
import type { GpuBenchmark } from '../worker/gpu/types.ts';
import type { RuntimeStatus } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { EFFICIENCY, SHARE } from './estimate.ts';
import type { History } from './history.ts';
import { formatBytes } from './i18n/format.ts';
import { formatNumber, onLanguage } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';

export interface DeviceCardOptions {
  bridge: WorkerBridge;
  store: Store<PageState>;
  history: History;
  onError: (err: unknown) => void;
}

export function mountDeviceCard(box: HTMLElement, status: RuntimeStatus, options: DeviceCardOptions): void {
  const { api } = options.bridge;
  const { store } = options;
  const deviceLine = h('dd', { testid: 'device-status' });
  const counts = h('p', { testid: 'contrib-counts', class: 'note' });
  const drawDevice = (s: RuntimeStatus): void =>
    replace(
      deviceLine,
      tr('gpu.deviceLine', { generation: s.deviceGeneration, losses: s.deviceLosses }),
      s.lastDeviceLoss === null ? null : ' ',
      s.lastDeviceLoss === null ? null : tr('gpu.lastLoss', { message: s.lastDeviceLoss.message }),
    );
  const drawCounts = (state: Readonly<PageState>): void => {
    const s = state.status;
    if (state.runtime !== null) drawDevice(state.runtime);
    if (s === null) return replace(counts);
    counts.dataset['done'] = String(s.jobsDone);
    if (s.contributorId !== null) counts.dataset['contributor'] = s.contributorId;
    replace(
      counts,
      tr('contrib.counts', { done: s.jobsDone, failed: s.jobsFailed, running: s.running }),
      s.contributorId === null ? null : ' · ',
      s.contributorId === null ? null : tr('contrib.device', { id: s.contributorId }),
    );
  };
  store.subscribe(drawCounts);
  drawDevice(status);
  const assumptions = h('p', { class: 'note', testid: 'estimate-assumptions' });
  const drawAssumptions = (): void =>
    replace(
      assumptions,
      tr('gpu.estimateAssumptions', {
        share: `${formatNumber(SHARE[0])}–${formatNumber(SHARE[2])}`,
        efficiency: `${EFFICIENCY[0] * 100}–${EFFICIENCY[2] * 100}`,
        commission: (store.get().prices?.commissionBps ?? 0) / 100,
      }),
    );
  store.subscribe(drawAssumptions);
  onLanguage(drawAssumptions);

  if (status.gpu === null) {
    replace(
      box,
      h('p', { testid: 'gpu-missing', class: 'error' }, status.gpuError?.message ?? tr('gpu.noAdapter')),
      h('p', { class: 'note' }, tr('gpu.cpuFallback')),
      h('dl', { class: 'pairs' }, h('dt', {}, tr('gpu.device')), deviceLine),
      counts,
    );
    return;
  }
  const g = status.gpu;
  const benchOut = h('div', { testid: 'bench-result' });
  const benchButton = h('button', { testid: 'bench', type: 'button' }, tr('gpu.bench'));
  const showBench = (b: Pick<GpuBenchmark, 'matmul' | 'copy'>): void =>
    replace(
      benchOut,
      h(
        'dl',
        { class: 'pairs' },
        h('dt', {}, tr('gpu.matmul')),
        h(
          'dd',
          { testid: 'bench-gflops' },
          tr('gpu.matmulResult', () => ({
            gflops: formatNumber(b.matmul.gflops, { maximumFractionDigits: 2 }),
            size: b.matmul.m,
            error: b.matmul.maxAbsError.toExponential(1),
          })),
        ),
        h('dt', {}, tr('gpu.copy')),
        h(
          'dd',
          { testid: 'bench-gbps' },
          tr('gpu.copyResult', () => ({ gbps: formatNumber(b.copy.gbps, { maximumFractionDigits: 2 }), size: formatBytes(b.copy.bytes) })),
        ),
      ),
    );
  const runBench = (): void => {
    benchButton.disabled = true;
    replace(benchOut, tr('gpu.benchRunning'));
    api
      .benchmark()
      .then((b) => {
        showBench(b);
        options.history.setBenchmark({ gflops: b.matmul.gflops, gbps: b.copy.gbps, at: Date.now() });
        store.set({ gflops: b.matmul.gflops });
      })
      .catch((err: unknown) => (replace(benchOut), options.onError(err)))
      .finally(() => (benchButton.disabled = false));
  };
  benchButton.addEventListener('click', runBench);
  let lose: HTMLButtonElement | null = null;
  if (import.meta.env.DEV) {
    lose = h('button', { testid: 'lose-device', type: 'button', class: 'dev' }, tr('gpu.lose'));
    lose.addEventListener('click', () => void api.loseDevice().catch(options.onError));
  }
  replace(
    box,
    h(
      'dl',
      { class: 'pairs' },
      h('dt', {}, tr('gpu.adapter')),
      h(
        'dd',
        { testid: 'gpu-adapter' },
        [g.vendor, g.architecture, g.device, g.description].filter(Boolean).join(' · ') || tr('gpu.unnamed'),
      ),
      h('dt', {}, tr('gpu.software')),
      h('dd', { testid: 'gpu-fallback' }, tr(g.isFallbackAdapter ? 'gpu.softwareYes' : 'gpu.no')),
      h('dt', {}, tr('gpu.features')),
      h('dd', { testid: 'gpu-features' }, g.features.join(', ') || tr('gpu.none')),
      h('dt', {}, 'shader-f16'),
      h('dd', { testid: 'gpu-f16' }, tr(g.features.includes('shader-f16') ? 'gpu.yes' : 'gpu.noF16')),
      h('dt', {}, tr('gpu.largestBuffer')),
      h('dd', {}, formatBytes(g.limits.maxBufferSize)),
      h('dt', {}, tr('gpu.device')),
      deviceLine,
    ),
    h('p', {}, benchButton, lose === null ? null : ' ', lose),
    benchOut,
    h('h3', {}, tr('gpu.estimateTitle')),
    assumptions,
    counts,
  );
  // The estimate should be there before anything large is downloaded: measure on the first visit, reuse after.
  const saved = options.history.data.benchmark;
  if (saved === null) runBench();
  else store.set({ gflops: saved.gflops });
}
