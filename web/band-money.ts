/**
 * The status band's money answers. "What have I earned": the proven wallet's total, big, with
 * what is still being verified, what is paid, and when the next payout comes from what
 * threshold. "What will this device earn": before work, a range from the network's demand and
 * prices and the benchmark (web/estimate.ts), "close to nothing" on a software adapter, and the
 * first Start's download; once working, the rate measured from the receipts.
 */
import { h, replace, tr } from './dom.ts';
import { estimateEarnings, measuredRate, type Estimate } from './estimate.ts';
import type { History } from './history.ts';
import { formatBytes, formatDuration, formatIn, formatTon, formatTonRange } from './i18n/format.ts';
import { onLanguage } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';

export interface MoneyOptions {
  store: Store<PageState>;
  history: History;
  /** Whether a wallet is proven now. */
  walletProven: () => boolean;
}

export function mountEarnedAnswer(box: HTMLElement, options: MoneyOptions): void {
  const big = h('p', { class: 'big', testid: 'earned-total' });
  const sub = h('p', { class: 'sub', testid: 'earned-split' });
  const payout = h('p', { class: 'sub', testid: 'earned-payout' });
  replace(box, h('p', { class: 'label' }, tr('earn.askEarned')), big, sub, payout);
  const draw = (state: Readonly<PageState>): void => {
    const running = state.status !== null && state.status.state !== 'idle';
    const summary = state.earnings;
    if (!options.walletProven() || summary === null) {
      delete box.dataset['nano'];
      replace(big, tr('earn.nothingYet'));
      replace(sub, tr(running ? 'earn.runningUnpaid' : 'earn.connectToEarn'));
      replace(payout);
      return;
    }
    const { pending, settled, inFlight, paid } = summary.balances;
    const total = BigInt(pending) + BigInt(settled) + BigInt(inFlight) + BigInt(paid);
    box.dataset['nano'] = total.toString();
    replace(big, formatTon(total));
    replace(
      sub,
      tr('earn.split', {
        verifying: formatTon(pending),
        toPay: formatTon(BigInt(settled) + BigInt(inFlight)),
        paid: formatTon(paid),
      }),
    );
    const rules = state.network?.payouts ?? null;
    if (rules === null) return replace(payout);
    const threshold = BigInt(rules.thresholdNano);
    replace(
      payout,
      BigInt(settled) >= threshold && BigInt(settled) > 0n
        ? tr('earn.nextPayout', { when: formatIn(rules.nextAt, Date.now()) })
        : tr('earn.payoutFrom', { threshold: formatTon(threshold), window: formatDuration(rules.verificationWindowMs) }),
    );
  };
  options.store.subscribe(draw);
  onLanguage(() => draw(options.store.get()));
}

/** The estimate for the state now; null when there is none to make. */
export function estimateFor(state: Readonly<PageState>): Estimate | null {
  if (state.gflops === null || state.prices === null || state.network === null) return null;
  return estimateEarnings({
    gflops: state.gflops,
    models: state.models.map((m) => ({ id: m.id, engine: m.engine, sizeBytes: m.sizeBytes, servable: m.blocked === null })),
    prices: state.prices,
    network: state.network,
    counted: state.status !== null && state.status.state !== 'idle',
  });
}

export function mountEstimateAnswer(box: HTMLElement, options: MoneyOptions): void {
  const big = h('p', { class: 'big', testid: 'estimate-headline' });
  const sub = h('p', { class: 'sub', testid: 'estimate-detail' });
  const download = h('p', { class: 'sub', testid: 'estimate-download' });
  replace(box, h('p', { class: 'label' }, tr('gpu.askWillEarn')), big, sub, download);
  const draw = (state: Readonly<PageState>): void => {
    const estimate = estimateFor(state);
    for (const key of ['nanoLow', 'nanoHigh', 'nanoMid', 'measuredNanoHour']) delete box.dataset[key];
    const measured = state.runStartedAt === null ? null : measuredRate(options.history.data.receipts, state.runStartedAt, state.now);
    const range = estimate === null ? null : formatTonRange(estimate.low, estimate.high);
    if (estimate !== null) {
      box.dataset['nanoLow'] = estimate.low.toString();
      box.dataset['nanoHigh'] = estimate.high.toString();
      box.dataset['nanoMid'] = estimate.mid.toString();
    }
    // What the first Start downloads: the engine runtime and the models this device would serve, unless cached.
    const servable = state.models.filter((m) => m.blocked === null);
    const runtime = Math.max(0, ...servable.map((m) => m.runtimeBytes));
    const bytes = runtime + servable.reduce((sum, m) => sum + (m.cached ? 0 : m.sizeBytes), 0);
    box.dataset['downloadBytes'] = String(bytes);
    replace(
      download,
      bytes === 0 || (state.status !== null && state.status.state !== 'idle')
        ? null
        : tr(runtime > 0 ? 'gpu.firstDownloadRuntime' : 'gpu.firstDownload', { size: formatBytes(bytes), runtime: formatBytes(runtime) }),
    );
    if (measured !== null) {
      box.dataset['measuredNanoHour'] = measured.nanoPerHour.toString();
      replace(big, tr('gpu.perHour', { amount: formatTon(measured.nanoPerHour) }));
      replace(sub, range === null ? tr('gpu.measured') : tr('gpu.measuredVsEstimate', { range }));
      return;
    }
    if (state.gpu === null && state.runtime !== null) {
      replace(big, tr('gpu.estimateNoGpu'));
      return replace(sub, tr('gpu.cpuFallback'));
    }
    if (state.gflops === null) {
      replace(big, tr('gpu.estimateMeasuring'));
      return replace(sub, tr('gpu.estimateNeedsBench'));
    }
    if (state.prices === null || state.network === null) {
      replace(big, tr('gpu.estimateUnknown'));
      return replace(sub, tr('gpu.estimateNoPrices'));
    }
    if (estimate === null) {
      replace(big, tr('gpu.estimateUnknown'));
      return replace(sub, tr('gpu.estimateNone'));
    }
    if (estimate.high === 0n && estimate.unknownSize.length > 0) {
      replace(big, tr('gpu.estimateUnknown'));
      return replace(sub, tr('gpu.unknownSize'));
    }
    if (state.gpu?.isFallbackAdapter === true) {
      replace(big, tr('gpu.closeToNothing'));
      return replace(sub, estimate.high === 0n ? tr('gpu.softwareNoDemand') : tr('gpu.softwareRange', { range: range ?? '' }));
    }
    if (estimate.high === 0n) {
      replace(big, tr('gpu.closeToNothing'));
      return replace(sub, tr('gpu.noDemand'));
    }
    replace(big, tr('gpu.perHour', { amount: range ?? '' }));
    replace(sub, tr(estimate.limit === 'speed' ? 'gpu.estimateSpeed' : 'gpu.estimateDemand'));
  };
  options.store.subscribe(draw);
  onLanguage(() => draw(options.store.get()));
}
