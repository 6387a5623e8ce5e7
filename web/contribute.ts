/** The "Contribute" card: start and stop serving the network, and what the worker is doing, in words. */
import { proxy } from 'comlink';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { t } from './i18n/index.ts';

type PauseRule = NonNullable<ContributorStatus['pausedBy']>;

/** The words for each rule that can pause this device. */
const RULE_KEYS: Record<PauseRule, string> = {
  user: 'contrib.ruleUser',
  remote: 'contrib.ruleRemote',
  'duty-cycle': 'contrib.ruleDutyCycle',
  battery: 'contrib.ruleBattery',
  idle: 'contrib.ruleIdle',
  schedule: 'contrib.ruleSchedule',
  consent: 'contrib.ruleConsent',
  device: 'contrib.ruleDevice',
};

export interface ContributeOptions {
  coordinatorUrl: string | null;
  onError: (err: unknown) => void;
  /** Hears every status, e.g. so other cards refresh when a job finishes (jobs load models). */
  onStatus?: (status: ContributorStatus) => void;
  /** The wallet session token to send in the hello, if a wallet is proven. */
  walletSession?: () => string | undefined;
}

/** The status line's catalog key and parameters. */
export function statusWords(s: ContributorStatus, now = Date.now()): { key: string; params: Record<string, string | number> } {
  switch (s.state) {
    case 'idle':
      return { key: 'contrib.idle', params: {} };
    case 'connecting':
      return s.nextAttemptAt !== null && s.reconnectAttempts > 0
        ? {
            key: 'contrib.retrying',
            params: { seconds: Math.max(0, Math.ceil((s.nextAttemptAt - now) / 1000)), attempt: s.reconnectAttempts },
          }
        : { key: 'contrib.connecting', params: {} };
    case 'connected':
      return { key: 'contrib.connected', params: {} };
    case 'working':
      if (s.loading.length > 0) return { key: 'contrib.loading', params: { model: s.loading.join(', ') } };
      return { key: 'contrib.working', params: { running: s.running } };
    case 'paused':
      return s.pausedBy === null
        ? { key: 'contrib.paused', params: {} }
        : { key: 'contrib.pausedBy', params: { rule: t(RULE_KEYS[s.pausedBy]) } };
    case 'error':
      return { key: 'contrib.error', params: { message: s.lastError ?? '?' } };
  }
}

export function mountContribute(box: HTMLElement, bridge: WorkerBridge, options: ContributeOptions): void {
  const { api } = bridge;
  const { coordinatorUrl, onError } = options;
  const status = h('p', { testid: 'contrib-state', role: 'status' }, tr('contrib.idle'));
  const help = h('p', { testid: 'contrib-help', class: 'note' });
  const counts = h('p', { testid: 'contrib-counts', class: 'note' });
  const start = h('button', { testid: 'contrib-start', type: 'button' }, tr('contrib.start'));
  const stop = h('button', { testid: 'contrib-stop', type: 'button', disabled: true }, tr('contrib.stop'));
  const render = (s: ContributorStatus): void => {
    box.dataset['state'] = s.state;
    box.dataset['pausedBy'] = s.pausedBy ?? '';
    // Parameters are read again on a language switch, so the rule's name follows it.
    replace(
      status,
      tr(statusWords(s).key, () => statusWords(s).params),
    );
    replace(help, s.state === 'error' ? tr('contrib.errorHelp') : s.state === 'connected' ? tr('contrib.connectedHelp') : null);
    replace(
      counts,
      tr('contrib.counts', { done: s.jobsDone, failed: s.jobsFailed, running: s.running }),
      s.contributorId === null ? null : ' · ',
      s.contributorId === null ? null : tr('contrib.device', { id: s.contributorId }),
    );
    counts.dataset['done'] = String(s.jobsDone);
    if (s.contributorId !== null) counts.dataset['contributor'] = s.contributorId;
    const active = s.state !== 'idle';
    start.disabled = active;
    stop.disabled = !active;
    options.onStatus?.(s);
  };
  start.addEventListener('click', () => {
    if (coordinatorUrl === null) return;
    start.disabled = true;
    const session = options.walletSession?.();
    api.startContributing({ coordinatorUrl, ...(session !== undefined && { session }) }, proxy(render)).then(render, (err: unknown) => {
      start.disabled = false;
      onError(err);
    });
  });
  stop.addEventListener('click', () => void api.stopContributing().then((s) => s !== null && render(s), onError));
  // Controls card (web/controls.ts): a reloaded tab resumes contributing without a click; this card follows it.
  void api.watchContributor(proxy(render)).then((s) => s !== null && render(s));
  replace(
    box,
    h('h2', { id: 'contrib-h' }, tr('contrib.title')),
    coordinatorUrl === null
      ? h('p', { class: 'note' }, tr('contrib.noNetwork'))
      : h('p', { class: 'note' }, tr('contrib.coordinator'), ' ', h('code', {}, coordinatorUrl)),
    h('p', { class: 'note' }, tr('contrib.privacy')),
    h('p', {}, start, ' ', stop),
    status,
    help,
    counts,
  );
}
