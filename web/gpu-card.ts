/** The "GPU" card: the adapter, its features, the benchmark, and what this device might earn. */
import { formatBytes } from '../protocol/errors.ts';
import type { GpuBenchmark } from '../worker/gpu/types.ts';
import type { ModelSummary, RuntimeStatus } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { formatTon } from './earnings.ts';
import { BUSY_SHARE, EFFICIENCY, estimateEarnings, type PriceListView } from './estimate.ts';
import type { History } from './history.ts';
import { formatNumber } from './i18n/index.ts';

export interface GpuCardOptions {
  bridge: WorkerBridge;
  history: History;
  /** The network's price list; null when there is none (no network, or it publishes none). */
  prices: Promise<PriceListView | null>;
  models: () => Promise<ModelSummary[]>;
  onError: (err: unknown) => void;
}

export interface GpuCard {
  /** Shows the device line of a fresh runtime status (the rest of the card keeps its state). */
  refreshStatus(s: RuntimeStatus): void;
}

export function mountGpuCard(box: HTMLElement, status: RuntimeStatus, options: GpuCardOptions): GpuCard {
  const { api } = options.bridge;
  const title = h('h2', { id: 'gpu-h' }, tr('gpu.title'));
  const deviceLine = h('dd', { testid: 'device-status' });
  const refreshStatus = (s: RuntimeStatus): void =>
    replace(
      deviceLine,
      tr('gpu.deviceLine', { generation: s.deviceGeneration, losses: s.deviceLosses }),
      s.lastDeviceLoss === null ? null : ' ',
      s.lastDeviceLoss === null ? null : tr('gpu.lastLoss', { message: s.lastDeviceLoss.message }),
    );
  refreshStatus(status);
  if (status.gpu === null) {
    replace(
      box,
      title,
      h('p', { testid: 'gpu-missing', class: 'error' }, status.gpuError?.message ?? tr('gpu.noAdapter')),
      h('p', { class: 'note' }, tr('gpu.cpuFallback')),
    );
    return { refreshStatus };
  }
  const g = status.gpu;
  const benchOut = h('div', { testid: 'bench-result', 'aria-live': 'polite' });
  const estimateBox = h('div', { testid: 'estimate', 'aria-live': 'polite' }, tr('gpu.estimateNeedsBench'));
  const benchButton = h('button', { testid: 'bench', type: 'button' }, tr('gpu.bench'));
  const loseButton = h('button', { testid: 'lose-device', type: 'button' }, tr('gpu.lose'));

  const showBench = (b: Pick<GpuBenchmark, 'matmul' | 'copy'>): void =>
    replace(
      benchOut,
      h(
        'dl',
        {},
        h('dt', {}, tr('gpu.matmul')),
        h(
          'dd',
          { testid: 'bench-gflops' },
          tr('gpu.matmulResult', {
            gflops: b.matmul.gflops.toFixed(2),
            size: b.matmul.m,
            error: b.matmul.maxAbsError.toExponential(1),
          }),
        ),
        h('dt', {}, tr('gpu.copy')),
        h('dd', { testid: 'bench-gbps' }, tr('gpu.copyResult', { gbps: b.copy.gbps.toFixed(2), size: formatBytes(b.copy.bytes) })),
      ),
    );
  const showEstimate = async (gflops: number): Promise<void> => {
    const prices = await options.prices;
    if (prices === null) return replace(estimateBox, tr('gpu.estimateNoPrices'));
    const models = await options.models();
    const e = estimateEarnings(
      gflops,
      models.map((m) => ({ id: m.id, engine: m.engine, sizeBytes: m.sizeBytes, servable: m.blocked === null })),
      prices,
    );
    if (e === null) return replace(estimateBox, tr('gpu.estimateNone'));
    const name = models.find((m) => m.id === e.modelId)?.name ?? e.modelId;
    estimateBox.dataset['nanoHour'] = e.perBusyHour.toString();
    estimateBox.dataset['nanoDay'] = e.perDay.toString();
    replace(
      estimateBox,
      h(
        'p',
        {},
        h(
          'strong',
          {},
          tr('gpu.estimate', () => ({
            perHour: formatTon(e.perBusyHour.toString()),
            perDay: formatTon(e.perDay.toString()),
            model: name,
            tps: formatNumber(e.tokensPerSecond, { maximumFractionDigits: 1 }),
            busy: BUSY_SHARE * 100,
          })),
        ),
      ),
      h('p', { class: 'note' }, tr('gpu.estimateAssumptions', { efficiency: EFFICIENCY * 100, commission: prices.commissionBps / 100 })),
    );
  };
  const runBench = (): void => {
    benchButton.disabled = true;
    replace(benchOut, tr('gpu.benchRunning'));
    api
      .benchmark()
      .then((b) => {
        showBench(b);
        options.history.setBenchmark({ gflops: b.matmul.gflops, gbps: b.copy.gbps, at: Date.now() });
        return showEstimate(b.matmul.gflops);
      })
      .catch((err: unknown) => (replace(benchOut), options.onError(err)))
      .finally(() => (benchButton.disabled = false));
  };
  benchButton.addEventListener('click', runBench);
  loseButton.addEventListener('click', () => void api.loseDevice().catch(options.onError));

  replace(
    box,
    title,
    h(
      'dl',
      {},
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
    h('p', {}, benchButton, ' ', loseButton),
    benchOut,
    h('h3', {}, tr('gpu.estimateTitle')),
    estimateBox,
  );
  // The estimate should be there before anything large is downloaded: measure on the first visit, reuse after.
  const saved = options.history.data.benchmark;
  if (saved === null) runBench();
  else void showEstimate(saved.gflops).catch(options.onError);
  return { refreshStatus };
}
