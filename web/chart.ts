/** The throughput chart: jobs per minute and tokens per second over time, from the saved history. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h, replace, tr } from './dom.ts';
import type { History } from './history.ts';
import { onLanguage, t } from './i18n/index.ts';

export interface ThroughputChart {
  /** Redraws from the history (after jobs or receipts were added). */
  update(): void;
}

export function mountChart(box: HTMLElement, history: History): ThroughputChart {
  const plotBox = h('div', { testid: 'chart', class: 'chart', 'aria-hidden': 'true' });
  const summary = h('p', { testid: 'chart-summary', class: 'note', 'aria-live': 'polite' });
  replace(
    box,
    h('h2', { id: 'chart-h' }, tr('chart.title')),
    h('figure', {}, plotBox, h('figcaption', {}, summary)),
    h('p', { class: 'note' }, tr('chart.explain')),
  );
  let plot: uPlot | null = null;
  const build = (): void => {
    plot?.destroy();
    const width = Math.max(280, Math.min(900, (box.clientWidth || 640) - 32));
    plot = new uPlot(
      {
        width,
        height: 220,
        legend: { show: false },
        scales: {
          x: { time: true },
          jobs: { range: (_u, _min, max) => [0, Math.max(1, max)] },
          tps: { range: (_u, _min, max) => [0, Math.max(1, max)] },
        },
        series: [
          {},
          { label: t('chart.jobs'), scale: 'jobs', stroke: '#0284c7', width: 2, points: { show: true, size: 6 } },
          { label: t('chart.tokens'), scale: 'tps', stroke: '#c2410c', width: 2, dash: [6, 4], points: { show: true, size: 6 } },
        ],
        axes: [{}, { scale: 'jobs', label: t('chart.jobs') }, { scale: 'tps', side: 1, label: t('chart.tokens'), grid: { show: false } }],
      },
      history.series(),
      plotBox,
    );
  };
  const update = (): void => {
    const series = history.series();
    const count = series[0].length;
    plotBox.dataset['points'] = String(count);
    if (plot === null) build();
    else plot.setData(series);
    const last = count - 1;
    replace(
      summary,
      count === 0
        ? tr('chart.empty')
        : tr('chart.summary', {
            minutes: count,
            jobs: series[1].reduce((a, b) => a + b, 0),
            lastJobs: series[1][last] ?? 0,
            lastTokens: series[2][last] ?? 0,
          }),
    );
  };
  // Axis labels are drawn on the canvas: a new language redraws the chart.
  onLanguage(() => {
    build();
    update();
  });
  update();
  return { update };
}
