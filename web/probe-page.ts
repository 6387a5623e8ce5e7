/**
 * The dashboard, thin over the worker's state: the first-visit explanation, the GPU and its
 * earnings estimate, contributing and its live status, the wallet and earnings, throughput
 * over time, the models, and running one on demand.
 */
import { SpinneretError } from '../protocol/errors.ts';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import type { ModelSummary, RuntimeStatus } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import { mountChart } from './chart.ts';
import type { PageConfig } from './config.ts';
import { mountContribute } from './contribute.ts';
// The Controls card (contributor controls: rules, background, resume after reload); keep when reorganising.
import { mountControls } from './controls.ts';
import { h, replace } from './dom.ts';
import { mountEarnings } from './earnings.ts';
import type { PriceListView } from './estimate.ts';
import { mountGpuCard } from './gpu-card.ts';
import { browserStorage, History } from './history.ts';
import { mountModels } from './models-card.ts';
import { mountRunCard } from './run-card.ts';
import { mountIntro } from './shell.ts';
import { mountWallet, type WalletCard } from './wallet.ts';

export async function mountProbePage(root: HTMLElement, bridge: WorkerBridge, config: PageConfig): Promise<void> {
  const { api } = bridge;
  const { manifestUrl, coordinatorUrl } = config;
  const section = (testid: string, labelledBy: string): HTMLElement => h('section', { testid, 'aria-labelledby': labelledBy });
  const contribBox = section('contribute', 'contrib-h');
  const controlsBox = section('controls', 'controls-h'); // Controls card
  const walletBox = section('wallet', 'wallet-h');
  const earnBox = section('earnings', 'earn-h');
  const chartBox = section('throughput', 'chart-h');
  const gpuBox = section('gpu', 'gpu-h');
  const modelsBox = section('models', 'models-h');
  const runBox = section('run', 'run-h');
  const errorBox = h('p', { testid: 'error', class: 'error', role: 'alert' });
  replace(
    root,
    mountIntro(),
    errorBox,
    gpuBox,
    contribBox,
    controlsBox,
    coordinatorUrl === null ? null : walletBox,
    coordinatorUrl === null ? null : earnBox,
    chartBox,
    modelsBox,
    runBox,
  );

  const showError = (err: unknown): void => {
    const message = err instanceof Error ? err.message : String(err);
    const code = err instanceof SpinneretError ? err.code : 'INTERNAL';
    errorBox.dataset['code'] = code;
    errorBox.dataset['name'] = err instanceof Error ? err.name : 'Error';
    replace(errorBox, message);
  };
  const clearError = (): void => {
    delete errorBox.dataset['code'];
    replace(errorBox);
  };

  let status: RuntimeStatus;
  try {
    status = await api.init({ manifestUrl });
  } catch (err) {
    showError(err);
    return;
  }

  const history = new History(browserStorage());
  const chart = mountChart(chartBox, history);
  const modelsCard = mountModels(modelsBox, bridge, manifestUrl, showError, clearError);
  const models = await modelsCard.render().catch((err: unknown) => (showError(err), [] as ModelSummary[]));
  const gpu = mountGpuCard(gpuBox, status, {
    bridge,
    history,
    prices: coordinatorUrl === null ? Promise.resolve(null) : fetchPrices(coordinatorUrl),
    models: () => api.models(),
    onError: showError,
  });
  const refreshStatus = async (): Promise<void> => gpu.refreshStatus(await api.status());

  let wallet: WalletCard | null = null;
  // Controls card: a reloaded tab resumes contributing once the wallet session is restored (earnings go to it).
  let walletReady: Promise<unknown> = Promise.resolve();
  let contributorId: string | null = null;
  if (coordinatorUrl !== null) {
    const { walletsListUrl } = config;
    walletReady = mountWallet(walletBox, { coordinatorUrl, walletsListUrl, deviceKey: () => api.deviceKey(), onError: showError }).then(
      (card) => (wallet = card),
      showError,
    );
    mountEarnings(earnBox, { coordinatorUrl, wallet: () => wallet?.wallet(), contributorId: () => contributorId, history });
  }
  let lastDone = 0;
  let lastEnded = 0;
  mountContribute(contribBox, bridge, {
    coordinatorUrl,
    onError: showError,
    walletSession: () => wallet?.session(),
    onStatus: (s: ContributorStatus) => {
      contributorId = s.contributorId ?? contributorId;
      // A new start counts from zero again.
      if (s.jobsDone < lastDone) lastDone = 0;
      if (s.jobsDone > lastDone) {
        history.addJobs(s.jobsDone - lastDone, Date.now());
        lastDone = s.jobsDone;
        chart.update();
      }
      // Jobs load models: the table follows.
      if (s.jobsDone + s.jobsFailed !== lastEnded) {
        lastEnded = s.jobsDone + s.jobsFailed;
        void modelsCard.render().catch(() => undefined);
      }
    },
  });

  // Controls card: mounted after the Contribute card, so that card already watches when a reloaded tab resumes.
  mountControls(controlsBox, bridge, {
    coordinatorUrl,
    onError: showError,
    walletSession: () => wallet?.session(),
    resumeAfter: walletReady,
  }).catch(showError);

  mountRunCard(runBox, bridge, {
    models,
    onError: showError,
    clearError,
    afterRun: async () => {
      await modelsCard.render();
      await refreshStatus();
    },
  });
  setInterval(() => void refreshStatus().catch(() => undefined), 2000);
  // Receipts arrive with the earnings card's polling; the chart picks up their tokens.
  setInterval(() => chart.update(), 5000);
}

async function fetchPrices(coordinatorUrl: string): Promise<PriceListView | null> {
  try {
    const response = await fetch(`${coordinatorUrl.replace(/\/+$/, '')}/v1/prices`);
    return response.ok ? ((await response.json()) as PriceListView) : null;
  } catch {
    return null;
  }
}
