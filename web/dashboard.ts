/**
 * The contributor's dashboard. Its first screen answers three questions, whatever the screen
 * size: is it working, what have I earned, what will this device earn; with the one primary
 * button (Start asks for a wallet first), earnings over time, and the rules in effect. The rest
 * is in sections that open on demand: settings, activity, this device, models, running a model,
 * and what Spinneret is. This module wires the parts; each draws from the page state.
 */
import { proxy } from 'comlink';
import { SpinneretError } from '../protocol/errors.ts';
import type { ContributorStatus } from '../worker/network/status.ts';
import type { ModelSummary, RuntimeStatus } from '../worker/runtime.ts';
import { CoordinatorClient } from './api.ts';
import { mountEarnedAnswer, mountEstimateAnswer } from './band-money.ts';
import { mountStateAnswer } from './band-state.ts';
import type { WorkerBridge } from './bridge.ts';
import { mountChart } from './chart.ts';
import type { PageConfig } from './config.ts';
import { mountControls } from './controls.ts';
import { mountDeviceCard } from './device-card.ts';
import { h, replace, tr } from './dom.ts';
import { mountActivity } from './earnings.ts';
import { browserStorage, History } from './history.ts';
import { mountModels } from './models-card.ts';
import { createStore, initialPageState } from './page-state.ts';
import { mountPrimary } from './primary.ts';
import { mountRulesLine } from './rules-line.ts';
import { mountRunCard } from './run-card.ts';
import { introParts, section, type Header } from './shell.ts';
import { Wallet } from './wallet.ts';
import { mountWalletChip } from './wallet-chip.ts';

/** How often times and the chart's axis move on, and the device line is read again, ms. */
const TICK_MS = 5_000;
/** How often the network's demand and payout rules are read again, ms. */
const NETWORK_MS = 20_000;

/**
 * Draws the first screen at once (its button included) and fills it in as the page's settings
 * (`configured`), the worker and the network answer.
 */
export async function mountDashboard(
  root: HTMLElement,
  bridge: WorkerBridge,
  configured: Promise<PageConfig>,
  header: Header,
): Promise<void> {
  const { api } = bridge;
  const store = createStore(initialPageState());
  const history = new History(browserStorage());

  const errorBox = h('p', { testid: 'error', class: 'error', role: 'alert' });
  const walletError = h('p', { testid: 'wallet-error', class: 'error', role: 'alert' });
  const showError = (err: unknown): void => {
    const message = err instanceof Error ? err.message : String(err);
    errorBox.dataset['code'] = err instanceof SpinneretError ? err.code : 'INTERNAL';
    errorBox.dataset['name'] = err instanceof Error ? err.name : 'Error';
    replace(errorBox, message);
  };
  const clearError = (): void => {
    delete errorBox.dataset['code'];
    replace(errorBox);
  };

  let wallet: Wallet | null = null;

  // The first screen.
  const stateBox = h('div', { class: 'answer', testid: 'answer-state' });
  const earnedBox = h('div', { class: 'answer', testid: 'earned' });
  const estimateBox = h('div', { class: 'answer', testid: 'estimate' });
  const bar = h('div', { class: 'primary-bar', testid: 'primary-bar' });
  const rules = h('p', { class: 'rules', testid: 'rules-line' });
  const band = h(
    'section',
    { class: 'band', testid: 'contribute', 'aria-labelledby': 'band-h' },
    h('h1', { id: 'band-h', class: 'sr-only' }, tr('app.bandTitle')),
    h('div', { class: 'answers' }, stateBox, earnedBox, estimateBox),
    bar,
    rules,
  );
  const chartBox = h('section', { class: 'chart-card', testid: 'throughput', 'aria-labelledby': 'chart-h' });

  // The sections.
  const settingsBody = h('div', { testid: 'controls' });
  const activityBody = h('div', { testid: 'earnings' });
  const deviceBody = h('div', { testid: 'gpu' });
  const modelsBody = h('div', { testid: 'models' });
  const runBody = h('div', { testid: 'run' });
  const settings = section('settings', 'controls.title', settingsBody);
  const about = section('about', 'app.introTitle', h('div', { testid: 'intro' }, ...introParts()));
  const activity = section('activity', 'earn.title', activityBody);
  replace(
    root,
    h('p', { class: 'tagline' }, tr('app.tagline')),
    walletError,
    errorBox,
    band,
    chartBox,
    settings,
    activity,
    section('device', 'gpu.title', deviceBody),
    section('models', 'models.title', modelsBody),
    section('run', 'run.title', runBody),
    about,
  );
  const openSection = (details: HTMLDetailsElement): void => {
    details.open = true;
    details.scrollIntoView({ block: 'start' });
    details.querySelector('summary')?.focus();
  };
  const openFromHash = (): void => {
    const target = document.getElementById(location.hash.slice(1));
    if (target instanceof HTMLDetailsElement) openSection(target);
  };
  addEventListener('hashchange', openFromHash);
  root.addEventListener('click', (event) => {
    const link = (event.target as Element | null)?.closest?.('a[href^="#"]');
    const target = link === null || link === undefined ? null : document.getElementById((link.getAttribute('href') ?? '#').slice(1));
    if (target instanceof HTMLDetailsElement) {
      event.preventDefault();
      openSection(target);
    }
  });

  const walletProven = (): boolean => wallet?.session() !== undefined;
  mountStateAnswer(stateBox, store, history);
  mountEarnedAnswer(earnedBox, { store, history, walletProven });
  mountEstimateAnswer(estimateBox, { store, history, walletProven });
  mountRulesLine(rules, store, () => openSection(settings));
  mountChart(chartBox, store, history);

  // The primary button is there at once; a Start pressed before the worker is ready waits for it.
  let initDone = (): void => undefined;
  let initFailed = (_err: unknown): void => undefined;
  const initialized = new Promise<void>((resolve, reject) => ((initDone = resolve), (initFailed = reject)));
  initialized.catch(() => undefined);
  let onStatus = (_s: ContributorStatus): void => undefined;
  const primary = mountPrimary(bar, {
    store,
    onError: showError,
    start: async (session) => {
      const { coordinatorUrl } = await configured;
      if (coordinatorUrl === null) return;
      clearError();
      await initialized;
      // Pausing is Stop's job now: a pause saved by an older version gives way to Start.
      if (store.get().controls?.paused === true) store.set({ controls: await api.setControls({ paused: false }) });
      onStatus(await api.startContributing({ coordinatorUrl, ...(session !== undefined && { session }) }, proxy(onStatus)));
    },
    stop: async () => {
      await initialized;
      const s = await api.stopContributing();
      if (s !== null) onStatus(s);
    },
  });

  const config = await configured;
  const { manifestUrl, coordinatorUrl } = config;
  activity.hidden = coordinatorUrl === null;
  const coordinator = coordinatorUrl === null ? null : new CoordinatorClient(coordinatorUrl);
  if (coordinator !== null) {
    wallet = new Wallet({
      coordinator,
      walletsListUrl: config.walletsListUrl,
      bridgeOrigins: config.bridgeOrigins,
      deviceKey: () => api.deviceKey(),
    });
    mountWalletChip(header.walletSlot, wallet, { errorBox: walletError });
  }
  primary.attach(wallet, coordinatorUrl !== null);

  let runtimeStatus: RuntimeStatus;
  try {
    runtimeStatus = await api.init({ manifestUrl });
  } catch (err) {
    initFailed(err);
    showError(err);
    return;
  }
  store.set({ runtime: runtimeStatus, gpu: runtimeStatus.gpu });

  // The contributor's status, from this page's Start or a resume after a reload.
  let lastDone = 0;
  let lastEnded = -1;
  const modelsCard = mountModels(modelsBody, bridge, manifestUrl, showError, clearError);
  const refreshModels = (): Promise<ModelSummary[]> => modelsCard.render().then((models) => (store.set({ models }), models));
  onStatus = (s: ContributorStatus): void => {
    const running = s.state !== 'idle';
    const runStartedAt = running ? (store.get().runStartedAt ?? Date.now()) : null;
    // A new start counts from zero again.
    if (s.jobsDone < lastDone) lastDone = 0;
    if (s.jobsDone > lastDone) {
      history.addJobs(s.jobsDone - lastDone, Date.now());
      lastDone = s.jobsDone;
    }
    band.dataset['state'] = s.state;
    band.dataset['pausedBy'] = s.pausedBy ?? '';
    store.set({ status: s, runStartedAt });
    // Jobs load models: the list follows.
    if (s.jobsDone + s.jobsFailed !== lastEnded) {
      lastEnded = s.jobsDone + s.jobsFailed;
      void refreshModels().catch(() => undefined);
    }
  };
  // Ready for Start (one pressed early was waiting for this).
  initDone();
  const models = await refreshModels().catch((err: unknown) => (showError(err), [] as ModelSummary[]));
  mountDeviceCard(deviceBody, runtimeStatus, { bridge, store, history, onError: showError });

  if (coordinator !== null) {
    void coordinator.prices().then(
      (prices) => store.set({ prices }),
      () => store.set({ prices: null }),
    );
    const readNetwork = (): void =>
      void coordinator.network().then(
        (network) => store.set({ network }),
        () => store.set({ network: null }),
      );
    readNetwork();
    setInterval(readNetwork, NETWORK_MS);
    mountActivity(activityBody, {
      coordinator,
      store,
      history,
      wallet: () => wallet?.wallet(),
      contributorId: () => store.get().status?.contributorId ?? null,
    });
    // A wallet proven (or dropped) while contributing applies at once: the worker says hello again.
    wallet?.onChange(() => void api.setSession(wallet.session()).catch(showError));
  }

  const first = await api.watchContributor(proxy(onStatus));
  if (first !== null) onStatus(first);

  // Settings: mounted after the status watch, so that a reloaded tab's resume is seen here.
  mountControls(settingsBody, bridge, {
    coordinatorUrl,
    store,
    onError: showError,
    walletSession: () => wallet?.session(),
    resumeAfter: Promise.resolve(),
  }).catch(showError);

  mountRunCard(runBody, bridge, {
    models,
    onError: showError,
    clearError,
    afterRun: async () => {
      await refreshModels();
      store.set({ runtime: await api.status() });
    },
  });
  setInterval(() => {
    store.set({ now: Date.now() });
    void api.status().then(
      (runtime) => store.set({ runtime }),
      () => undefined,
    );
  }, TICK_MS);
  openFromHash();
}
