/**
 * Kiosk mode: an unattended machine (a lab PC, a kiosk screen) opened at the address the
 * owner's fleet page gives. It enrolls with the owner's token (`POST /v1/enroll` with this
 * device's identity key), asks this device's user once per owner wallet before it starts
 * (a managed `/kiosk.json` on the machine pre-consents), keeps the screen awake, and
 * shows a compact view: its name, what it is doing, and the owner's message. A reload does
 * all of it again, so the machine resumes by itself once consented.
 */
import { proxy } from 'comlink';
import * as v from 'valibot';
import { Enrollment } from '../protocol/answers.ts';
import type { ContributorStatus } from '../worker/network/status.ts';
import { CoordinatorClient, CoordinatorError } from './api.ts';
import type { WorkerBridge } from './bridge.ts';
import type { PageConfig } from './config.ts';
import { h, replace, say, tr } from './dom.ts';
import { t } from './i18n/index.ts';
import { type KioskConfig, KioskConfigError, resolveKioskConfig } from './kiosk-config.ts';
import { ScreenWakeLock } from './wake-lock.ts';

/** This machine's enrollment, kept so an expired token does not strand an enrolled machine. */
const STORED = 'spinneret.kiosk';
/** The owner wallets this device's user agreed to contribute for (a kiosk address asks once per owner). */
const CONSENTED = 'spinneret.kiosk.consent';

function consented(): string[] {
  try {
    const list = v.safeParse(v.array(v.string()), JSON.parse(localStorage.getItem(CONSENTED) ?? '[]'));
    return list.success ? list.output : [];
  } catch {
    return [];
  }
}

/** What of an enrollment this machine keeps, with the hash of the token it came from. */
const Kept = v.object({ ...v.pick(Enrollment, ['session', 'expiresAt', 'wallet', 'label']).entries, tokenHash: v.string() });
type Enrolled = Omit<v.InferOutput<typeof Kept>, 'tokenHash'>;

/** What to say for each refusal (a {@link CoordinatorError}'s reason): the problem, then what to do. */
const ENROLL_WORDS: Record<string, [string, string]> = {
  'token-revoked': ['kiosk.tokenRevoked', 'kiosk.tokenRevokedTodo'],
  'token-expired': ['kiosk.tokenExpired', 'kiosk.tokenExpiredTodo'],
  'token-unknown': ['kiosk.tokenUnknown', 'kiosk.tokenUnknownTodo'],
  'token-wrong-scope': ['kiosk.tokenWrongScope', 'kiosk.tokenWrongScopeTodo'],
  'token-device-limit': ['kiosk.tokenDeviceLimit', 'kiosk.tokenDeviceLimitTodo'],
  unreachable: ['kiosk.unreachable', 'kiosk.unreachableTodo'],
};
const OTHER_FAILURE: [string, string] = ['kiosk.startFailed', 'kiosk.startFailedTodo'];
const CONFIG_WORDS: Record<KioskConfigError['reason'], [string, string]> = {
  malformed: ['kiosk.configMalformed', 'kiosk.configMalformedTodo'],
  missing: ['kiosk.configMissing', 'kiosk.configMissingTodo'],
};
const WAKE_WORDS = {
  held: 'kiosk.wakeHeld',
  released: 'kiosk.wakeReleased',
  denied: 'kiosk.wakeDenied',
  unsupported: 'kiosk.wakeUnsupported',
};
const STATE_WORDS: Record<ContributorStatus['state'], string> = {
  idle: 'kiosk.stateIdle',
  connecting: 'kiosk.stateConnecting',
  connected: 'kiosk.stateConnected',
  working: 'kiosk.stateWorking',
  paused: 'kiosk.statePaused',
  error: 'kiosk.stateError',
};

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Enrolls; when the token has expired, an enrollment this machine already holds for it still serves. */
async function enrollOrResume(
  coordinator: CoordinatorClient,
  config: KioskConfig,
  sign: (token: string) => Promise<{ identityKey: string; signature: string }>,
): Promise<Enrolled> {
  const tokenHash = await sha256(config.enroll);
  try {
    const { session, expiresAt, wallet, label } = await coordinator.enroll({
      token: config.enroll,
      // Proof that this device holds the key it enrolls: nobody else can enroll it.
      ...(await sign(config.enroll)),
      ...(config.label !== undefined && { label: config.label }),
    });
    const enrolled = { session, expiresAt, wallet, label };
    localStorage.setItem(STORED, JSON.stringify({ tokenHash, ...enrolled }));
    return enrolled;
  } catch (err) {
    if (!(err instanceof CoordinatorError) || err.reason !== 'token-expired') throw err;
    const kept = keptEnrollment();
    if (kept === null || kept.tokenHash !== tokenHash || kept.expiresAt <= Date.now()) throw err;
    return kept;
  }
}

function keptEnrollment(): v.InferOutput<typeof Kept> | null {
  try {
    const kept = v.safeParse(Kept, JSON.parse(localStorage.getItem(STORED) ?? 'null'));
    return kept.success ? kept.output : null;
  } catch {
    return null;
  }
}

/** Keeps the screen on while the page is visible; says in words when the browser refuses. */
function keepAwake(box: HTMLElement): void {
  new ScreenWakeLock((state, detail) => {
    box.dataset['wake'] = state;
    say(box, WAKE_WORDS[state], { detail });
  }).set(true);
}

function stateKey(s: ContributorStatus): string {
  if (s.pausedBy === 'remote') return 'kiosk.pausedByOwner';
  if (s.pausedBy !== null) return 'kiosk.pausedByRule';
  return STATE_WORDS[s.state];
}

export async function mountKiosk(root: HTMLElement, bridge: WorkerBridge, page: PageConfig): Promise<void> {
  const { api } = bridge;
  const label = h('h2', { testid: 'kiosk-label' }, tr('kiosk.unnamed'));
  const state = h('p', { testid: 'kiosk-state', role: 'status', class: 'kiosk-state' }, tr('kiosk.starting'));
  const counts = h('p', { testid: 'kiosk-counts', class: 'note' });
  const message = h('p', { testid: 'kiosk-message', class: 'kiosk-message', hidden: true });
  const wake = h('p', { testid: 'kiosk-wake', class: 'note' });
  const error = h('div', { testid: 'kiosk-error', class: 'error', role: 'alert', hidden: true });
  const view = h('section', { testid: 'kiosk-view', class: 'card kiosk', 'aria-labelledby': 'kiosk-h' });
  replace(view, h('p', { id: 'kiosk-h', class: 'note' }, tr('kiosk.title')), label, state, counts, message, wake, error);
  replace(root, view);
  root.dataset['kiosk'] = 'true';

  const fail = ([problem, todo]: [string, string], detail = ''): void => {
    view.dataset['state'] = 'error';
    error.hidden = false;
    replace(error, h('strong', {}, tr(problem, { detail })), ' ', tr(todo), detail === '' ? null : h('p', { class: 'note' }, detail));
  };

  let config: KioskConfig;
  // Settings from /kiosk.json on the machine's own app origin are the owner's managed policy and
  // pre-consent; settings from an address need a click on this device once per owner wallet.
  const managed = new URLSearchParams(location.search).get('enroll') === null;
  try {
    config = await resolveKioskConfig(location);
  } catch (err) {
    const reason = err instanceof KioskConfigError ? err.reason : 'malformed';
    error.dataset['reason'] = `config-${reason}`;
    return fail(CONFIG_WORDS[reason], err instanceof KioskConfigError ? err.detail : String(err));
  }
  if (config.label !== undefined) replace(label, config.label);
  const coordinatorUrl = config.coordinatorUrl ?? page.coordinatorUrl;
  if (coordinatorUrl === null) {
    error.dataset['reason'] = 'no-coordinator';
    return fail(['kiosk.noCoordinator', 'kiosk.noCoordinatorTodo']);
  }
  keepAwake(wake);

  let enrolled: Enrolled;
  try {
    await api.init({ manifestUrl: page.manifestUrl });
    if (config.controls !== undefined) await api.setControls(config.controls);
    enrolled = await enrollOrResume(new CoordinatorClient(coordinatorUrl), config, (token) => api.signEnrollment(token));
  } catch (err) {
    const reason = err instanceof CoordinatorError ? err.reason : 'start';
    error.dataset['reason'] = reason;
    const detail = err instanceof Error ? err.message : String(err);
    return fail(ENROLL_WORDS[reason] ?? OTHER_FAILURE, detail);
  }
  replace(label, enrolled.label || t('kiosk.unnamed'));
  view.dataset['enrolled'] = 'true';

  const render = (s: ContributorStatus): void => {
    view.dataset['state'] = s.state;
    view.dataset['pausedBy'] = s.pausedBy ?? '';
    replace(state, tr(stateKey(s), { rule: s.pausedBy ?? '', error: s.lastError ?? '' }));
    error.hidden = true;
    replace(counts, tr('kiosk.counts', { done: s.jobsDone, failed: s.jobsFailed, id: s.contributorId ?? '…' }));
    counts.dataset['done'] = String(s.jobsDone);
    message.hidden = s.ownerMessage === null;
    if (s.ownerMessage !== null) replace(message, tr('kiosk.ownerMessage', { text: s.ownerMessage.text }));
  };
  const visibility = (): void => void api.setSignals({ visibility: document.visibilityState === 'visible' ? 'visible' : 'hidden' });
  document.addEventListener('visibilitychange', visibility);
  visibility();

  const start = (): void => {
    api
      .startContributing({ coordinatorUrl, session: enrolled.session, label: enrolled.label }, proxy(render))
      .then(render, (err: unknown) => fail(OTHER_FAILURE, err instanceof Error ? err.message : String(err)));
  };
  if (!managed && !consented().includes(enrolled.wallet)) {
    view.dataset['consent'] = 'asked';
    replace(state, tr('kiosk.consentAsk'));
    const consent = h(
      'div',
      { testid: 'kiosk-consent', class: 'kiosk-consent' },
      h('p', {}, tr('kiosk.consentWallet'), ' ', h('span', { class: 'mono', testid: 'kiosk-consent-wallet' }, enrolled.wallet)),
      h('p', {}, tr('kiosk.consentWhat')),
    );
    const agree = h('button', { type: 'button', testid: 'kiosk-consent-start' }, tr('kiosk.consentStart'));
    agree.addEventListener('click', () => {
      localStorage.setItem(CONSENTED, JSON.stringify([...consented(), enrolled.wallet]));
      view.dataset['consent'] = 'given';
      consent.remove();
      start();
    });
    consent.append(agree);
    state.after(consent);
    return;
  }
  view.dataset['consent'] = managed ? 'managed' : 'remembered';
  if (config.autostart) return start();
  const button = h('button', { type: 'button', testid: 'kiosk-start' }, tr('kiosk.start'));
  button.addEventListener('click', () => (button.remove(), start()));
  state.after(button);
}
