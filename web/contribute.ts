/** The "Contribute" card: start and stop serving the network, and what the worker is doing. */
import { proxy } from 'comlink';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace } from './dom.ts';

const STATE_WORDS: Record<ContributorStatus['state'], string> = {
  idle: 'Not contributing.',
  connecting: 'Connecting to the network…',
  connected: 'Connected, waiting for jobs (no demand right now).',
  working: 'Working on a job.',
  paused: 'Paused.',
  error: 'Error',
};

export function mountContribute(
  box: HTMLElement,
  bridge: WorkerBridge,
  coordinatorUrl: string | null,
  onError: (err: unknown) => void,
  /** Called when a job finishes, so other cards can refresh (jobs load models). */
  onJobDone: () => void = () => undefined,
  /** The wallet session token to send in the hello, if a wallet is proven. */
  walletSession: () => string | undefined = () => undefined,
): void {
  const { api } = bridge;
  const status = h('p', { testid: 'contrib-state', role: 'status' }, STATE_WORDS.idle);
  const counts = h('p', { testid: 'contrib-counts', class: 'note' });
  const start = h('button', { testid: 'contrib-start', type: 'button' }, 'Start');
  const stop = h('button', { testid: 'contrib-stop', type: 'button', disabled: true }, 'Stop');
  let done = 0;
  const render = (s: ContributorStatus): void => {
    box.dataset['state'] = s.state;
    if (s.jobsDone + s.jobsFailed !== done) {
      done = s.jobsDone + s.jobsFailed;
      onJobDone();
    }
    const words = s.state === 'error' ? `${STATE_WORDS.error}: ${s.lastError ?? 'unknown'}` : STATE_WORDS[s.state];
    replace(status, words);
    replace(
      counts,
      `${s.jobsDone} job(s) done, ${s.jobsFailed} failed, ${s.running} running${s.contributorId ? ` · device ${s.contributorId}` : ''}`,
    );
    counts.dataset['done'] = String(s.jobsDone);
    const active = s.state !== 'idle';
    start.disabled = active;
    stop.disabled = !active;
  };
  start.addEventListener('click', () => {
    if (coordinatorUrl === null) return;
    start.disabled = true;
    const session = walletSession();
    api.startContributing({ coordinatorUrl, ...(session !== undefined && { session }) }, proxy(render)).then(render, (err: unknown) => {
      start.disabled = false;
      onError(err);
    });
  });
  stop.addEventListener('click', () => void api.stopContributing().then((s) => s !== null && render(s), onError));
  replace(
    box,
    h('h2', { id: 'contrib-h' }, 'Contribute'),
    coordinatorUrl === null
      ? h('p', { class: 'note' }, 'No network is configured for this page.')
      : h('p', { class: 'note' }, 'Network coordinator: ', h('code', {}, coordinatorUrl)),
    h(
      'p',
      { class: 'note' },
      'While you contribute, this tab runs other people\u2019s AI jobs on your GPU. Jobs travel encrypted, so the network cannot read them, but they are decrypted here to run: your machine can see what it runs.',
    ),
    h('p', {}, start, stop),
    status,
    counts,
  );
}
