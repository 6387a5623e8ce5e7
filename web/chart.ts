/**
 * Earnings over time: TON earned per minute (from this device's signed receipts) and jobs per
 * minute, on a real time axis that ends now and spans 10 minutes to an hour, labelled in the
 * chosen language. The minute under way is drawn apart (dashed, hollow) and said to be partial,
 * so it does not read as a drop. The charting library (uPlot) loads once there is something to
 * draw: a first visit shows words until the first job.
 */
import type uPlot from 'uplot';
import { h, replace, tr } from './dom.ts';
import type { History } from './history.ts';
import { formatTime, formatTon, nanoToTon } from './i18n/format.ts';
import { language, onLanguage, t, tp } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';

const MINUTE = 60_000;
const MIN_SPAN = 10 * MINUTE;
const MAX_SPAN = 60 * MINUTE;

/** The time span the chart shows at `now`: from 10 minutes to an hour, ending now. */
export function chartSpan(firstMinute: number | null, now: number): { from: number; to: number } {
  const span = firstMinute === null ? MIN_SPAN : Math.min(MAX_SPAN, Math.max(MIN_SPAN, now - firstMinute + MINUTE));
  return { from: now - span, to: now };
}

export function mountChart(box: HTMLElement, store: Store<PageState>, history: History): { redraw(): void } {
  const plotBox = h('div', { testid: 'chart', class: 'chart', 'aria-hidden': 'true' });
  const summary = h('p', { testid: 'chart-summary', class: 'note' });
  const legend = h(
    'p',
    { class: 'legend note' },
    h('span', { class: 'key key-ton' }),
    tr('chart.ton'),
    ' ',
    h('span', { class: 'key key-partial' }),
    tr('chart.partial'),
    ' ',
    h('span', { class: 'key key-jobs' }),
    tr('chart.jobs'),
  );
  replace(box, h('h2', { id: 'chart-h' }, tr('chart.title')), h('figure', {}, plotBox, h('figcaption', {}, legend, summary)));
  let plot: uPlot | null = null;
  let library: Promise<typeof uPlot> | null = null;
  let Plot: typeof uPlot | null = null;

  const data = (now: number): { columns: uPlot.AlignedData; span: { from: number; to: number } } => {
    const span = chartSpan(history.firstMinute(), now);
    const minutes = history.minutes(span.from, now);
    const last = minutes.at.length - 1;
    // Before the first minute this device worked there is nothing to draw, not zeros.
    const first = history.firstMinute() ?? Number.POSITIVE_INFINITY;
    const ton = minutes.earnedNano.map((n, i) => ((minutes.at[i] ?? 0) < first ? null : nanoToTon(n)));
    const jobs = minutes.jobs.map((n, i) => ((minutes.at[i] ?? 0) < first ? null : n));
    // Complete minutes in one series, the minute under way in another (joined to the one before).
    const complete = ton.map((v, i) => (i === last ? null : v));
    const partial = ton.map((v, i) => (i >= last - 1 ? v : null));
    // Points at the middle of each minute; the minute under way at now, with what it has so far.
    const x = minutes.at.map((at, i) => (i === last ? Math.max(at, now) : at + MINUTE / 2) / 1000);
    return { columns: [x, complete, partial, jobs], span };
  };

  const numberFormat = (): Intl.NumberFormat => new Intl.NumberFormat(language(), { maximumSignificantDigits: 2 });
  const build = (): void => {
    if (Plot === null) return;
    plot?.destroy();
    const width = Math.max(260, Math.min(1100, plotBox.clientWidth || box.clientWidth - 32 || 600));
    const initial = data(store.get().now);
    plot = new Plot(
      {
        width,
        height: window.innerWidth < 600 ? 150 : 190,
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: true },
          ton: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 0.001] },
          jobs: { range: (_u, _min, max) => [0, Math.max(4, max * 1.15)] },
        },
        series: [
          {},
          {
            label: t('chart.ton'),
            scale: 'ton',
            stroke: '#16a34a',
            fill: 'rgba(22,163,74,0.12)',
            width: 2,
            // A lone minute has no line to draw: its point shows it.
            points: { show: (u: uPlot) => (u.data[1] ?? []).filter((v) => v != null).length < 3, size: 6 },
          },
          {
            label: t('chart.partial'),
            scale: 'ton',
            stroke: '#16a34a',
            width: 2,
            dash: [4, 4],
            points: { show: true, size: 8, fill: '#fff', filter: (u) => [u.data[0].length - 1] },
          },
          { label: t('chart.jobs'), scale: 'jobs', stroke: '#0284c7', width: 1, points: { show: false } },
        ],
        axes: [
          { values: (_u, splits) => splits.map((s) => formatTime(s * 1000)), space: 70 },
          { scale: 'ton', size: 66, values: (_u, splits) => splits.map((s) => numberFormat().format(s)) },
          { scale: 'jobs', side: 1, size: 36, grid: { show: false }, values: (_u, splits) => splits.map((s) => numberFormat().format(s)) },
        ],
      },
      initial.columns,
      plotBox,
    );
  };

  const redraw = (): void => {
    const now = store.get().now;
    const d = data(now);
    plotBox.dataset['from'] = String(d.span.from);
    plotBox.dataset['to'] = String(d.span.to);
    plotBox.dataset['points'] = String(d.columns[0].length);
    const running = store.get().status !== null && store.get().status?.state !== 'idle';
    if (Plot === null && (history.firstMinute() !== null || running)) {
      library ??= import('./chart-library.ts').then((m) => (Plot = m.default));
      void library.then(redraw, () => undefined);
    }
    if (Plot === null) plotBox.dataset['empty'] = 'true';
    else if (plot === null) {
      delete plotBox.dataset['empty'];
      build();
    } else plot.setData(d.columns);
    // The axis is time, ending now: set after the data, which would otherwise fit it to the points.
    plot?.setScale('x', { min: d.span.from / 1000, max: d.span.to / 1000 });
    const minutes = history.minutes(d.span.from, now);
    const jobs = minutes.jobs.reduce((a, b) => a + b, 0);
    const earned = minutes.earnedNano.reduce((a, b) => a + b, 0n);
    const current = minutes.earnedNano.at(-1) ?? 0n;
    box.dataset['jobs'] = String(jobs);
    replace(
      summary,
      jobs === 0
        ? tr('chart.empty')
        : tr('chart.summary', () => ({
            minutes: Math.round((d.span.to - d.span.from) / MINUTE),
            ton: formatTon(earned),
            jobs: tp('chart.jobsCount', jobs),
            current: formatTon(current),
          })),
    );
  };

  new ResizeObserver(() => {
    if (plot !== null && Math.abs(plot.width - (plotBox.clientWidth || plot.width)) > 8) build();
  }).observe(box);
  // Axis labels are drawn on the canvas: a new language redraws the chart.
  onLanguage(() => (build(), redraw()));
  let shown = '';
  store.subscribe((state) => {
    const key = `${state.now}|${state.status?.state ?? ''}|${history.data.points.length}|${history.data.receipts.length}|${history.data.points.at(-1)?.jobs ?? 0}`;
    if (key === shown) return;
    shown = key;
    redraw();
  });
  return { redraw };
}
