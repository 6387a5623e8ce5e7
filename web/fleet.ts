/**
 * The owner's fleet page (fleet.html): what a kiosk machine needs, proving the owner's wallet
 * (the wallet the machines earn for), issuing and revoking enrollment tokens (each shows the
 * kiosk address to open on a machine), and watching and steering the machines: status, jobs,
 * earnings, pause, resume, a message on their screen. Every form stays disabled until an owner
 * wallet is proven. One card per machine, so a phone never scrolls sideways.
 */
import type { FleetDevice, TokenView } from '../protocol/answers.ts';
import type { ControlRequest } from '../protocol/page-requests.ts';
import { CoordinatorClient } from './api.ts';
import { startWorker } from './bridge.ts';
import { resolveConfig } from './config.ts';
import { h, replace, say, tr, trAttr } from './dom.ts';
import { formatDateTime, formatTon } from './i18n/format.ts';
import { formatNumber, initLanguage, t } from './i18n/index.ts';
import { kioskUrl } from './kiosk-config.ts';
import { mountHeader } from './shell.ts';
import { Wallet } from './wallet.ts';
import { mountWalletChip } from './wallet-chip.ts';

const TTL_CHOICES: [number, string][] = [
  [24 * 3_600_000, 'fleet.ttlDay'],
  [7 * 24 * 3_600_000, 'fleet.ttlWeek'],
  [30 * 24 * 3_600_000, 'fleet.ttlMonth'],
  [365 * 24 * 3_600_000, 'fleet.ttlYear'],
];
const TOKEN_STATES = { active: 'fleet.tokenActive', expired: 'fleet.tokenExpired', revoked: 'fleet.tokenRevoked' };

function deviceState(d: FleetDevice): string {
  if (!d.connected) return t('fleet.offline', { when: d.lastSeenAt === null ? '—' : formatDateTime(d.lastSeenAt) });
  if (d.status?.pausedBy === 'remote' || (d.remotePaused && d.status === null)) return t('fleet.pausedByYou');
  if (d.status?.pausedBy) return t('fleet.pausedByRule', { rule: d.status.pausedBy });
  if (d.status === null) return t('fleet.online');
  return t('fleet.onlinePace', { pace: formatNumber(d.status.pace?.jobsPerMinute ?? 0, { maximumFractionDigits: 1 }) });
}

interface Reporting {
  onError: (err: unknown) => void;
  clearError: () => void;
}

function mountTokens(
  box: HTMLElement,
  coordinator: CoordinatorClient,
  session: () => string | undefined,
  { onError, clearError }: Reporting,
) {
  const fieldset = h('fieldset', { class: 'bare', testid: 'fleet-token-fieldset', disabled: true });
  const label = trAttr(
    h('input', { id: 'fleet-token-label', testid: 'fleet-token-label', maxlength: 64, required: true }),
    'placeholder',
    'fleet.labelHint',
  );
  const ttl = h(
    'select',
    { id: 'fleet-token-ttl', testid: 'fleet-token-ttl' },
    ...TTL_CHOICES.map(([ms, key]) => h('option', { value: ms }, tr(key))),
  );
  const max = h('input', { id: 'fleet-token-max', testid: 'fleet-token-max', type: 'number', min: 1, max: 10000, value: 1 });
  const scope = h(
    'select',
    { id: 'fleet-token-scope', testid: 'fleet-token-scope' },
    h('option', { value: 'contribute' }, tr('fleet.scopeContribute')),
    h('option', { value: 'monitor' }, tr('fleet.scopeMonitor')),
  );
  const issue = h('button', { type: 'submit', testid: 'fleet-token-issue' }, tr('fleet.issue'));
  const issued = h('div', { testid: 'fleet-issued', class: 'note', hidden: true });
  const list = h('ul', { testid: 'fleet-tokens' });
  const row = (id: string, labelKey: string, input: HTMLElement, help: string): HTMLElement =>
    h(
      'div',
      { class: 'field' },
      h('div', { class: 'field-row' }, h('label', { for: id }, tr(labelKey)), input),
      h('p', { class: 'help', id: `${id}-help` }, tr(help)),
    );
  for (const [input, id] of [
    [label, 'fleet-token-label'],
    [ttl, 'fleet-token-ttl'],
    [max, 'fleet-token-max'],
    [scope, 'fleet-token-scope'],
  ] as const)
    input.setAttribute('aria-describedby', `${id}-help`);
  replace(
    fieldset,
    row('fleet-token-label', 'fleet.label', label, 'fleet.labelHelp'),
    row('fleet-token-ttl', 'fleet.ttl', ttl, 'fleet.ttlHelp'),
    row('fleet-token-max', 'fleet.maxDevices', max, 'fleet.maxHelp'),
    row('fleet-token-scope', 'fleet.scope', scope, 'fleet.scopeHelp'),
    h('p', {}, issue),
  );
  const form = h('form', {}, fieldset);
  replace(box, h('h2', {}, tr('fleet.tokensTitle')), h('p', { class: 'note' }, tr('fleet.tokensNote')), form, issued, list);

  const render = (tokens: TokenView[]): void => {
    replace(
      list,
      ...tokens.map((token) => {
        const revoke = h(
          'button',
          { type: 'button', testid: 'fleet-token-revoke', disabled: token.state !== 'active' },
          tr('fleet.revoke'),
        );
        revoke.addEventListener('click', () => {
          const owner = session();
          if (owner === undefined) return;
          revoke.disabled = true;
          coordinator.revokeEnrollmentToken(owner, token.id).then(refresh, onError);
        });
        return h(
          'li',
          { testid: 'fleet-token', 'data-id': token.id, 'data-state': token.state },
          h('strong', {}, token.label),
          ' · ',
          tr(token.scope === 'monitor' ? 'fleet.scopeMonitor' : 'fleet.scopeContribute'),
          ' · ',
          tr(TOKEN_STATES[token.state]),
          ' · ',
          tr('fleet.tokenDevices', () => ({ used: token.devices, max: token.maxDevices, until: formatDateTime(token.expiresAt) })),
          ' ',
          revoke,
        );
      }),
    );
  };
  const refresh = async (): Promise<void> => {
    const owner = session();
    fieldset.disabled = owner === undefined;
    if (owner === undefined) return replace(list);
    render((await coordinator.enrollmentTokens(owner)).tokens);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const owner = session();
    if (owner === undefined) return onError(new Error(t('fleet.connectFirst')));
    const body = {
      label: label.value.trim(),
      ttlMs: Number(ttl.value),
      maxDevices: Number(max.value),
      scope: scope.value === 'monitor' ? ('monitor' as const) : ('contribute' as const),
    };
    issue.disabled = true;
    clearError();
    coordinator
      .issueEnrollmentToken(owner, body)
      .then((token) => {
        issued.hidden = false;
        // A coordinator chosen in this page's address goes along to the machines.
        const chosen = new URLSearchParams(location.search).get('coordinator');
        const url = new URL(kioskUrl(new URL('/', location.href).href, token.secret, token.label));
        if (chosen !== null) url.searchParams.set('coordinator', chosen);
        const shown =
          token.scope === 'monitor'
            ? h('code', { testid: 'fleet-secret' }, token.secret)
            : h('a', { href: url.href, testid: 'fleet-kiosk-url', target: '_blank', rel: 'noopener' }, url.href);
        replace(issued, tr(token.scope === 'monitor' ? 'fleet.monitorIssued' : 'fleet.kioskIssued'), ' ', shown);
        return refresh();
      })
      .catch(onError)
      .finally(() => (issue.disabled = false));
  });
  return refresh;
}

function mountDevices(
  box: HTMLElement,
  coordinator: CoordinatorClient,
  session: () => string | undefined,
  { onError, clearError }: Reporting,
) {
  const list = h('ul', { testid: 'fleet-devices', class: 'cards plain' });
  const empty = h('p', { testid: 'fleet-empty', class: 'note' }, tr('fleet.noDevices'));
  replace(box, h('h2', {}, tr('fleet.devicesTitle')), list, empty);
  const control = (id: string, body: ControlRequest): void => {
    const owner = session();
    clearError();
    if (owner !== undefined) coordinator.control(owner, id, body).then(refresh, onError);
  };
  const card = (d: FleetDevice): HTMLElement => {
    const pause = h('button', { type: 'button', testid: 'fleet-pause', disabled: d.remotePaused }, tr('fleet.pause'));
    const resume = h('button', { type: 'button', testid: 'fleet-resume', disabled: !d.remotePaused }, tr('fleet.resume'));
    const inputId = `fleet-message-${d.contributorId}`;
    const text = trAttr(h('input', { id: inputId, testid: 'fleet-message-text', maxlength: 500 }), 'placeholder', 'fleet.messageHint');
    const send = h('button', { type: 'button', testid: 'fleet-message-send' }, tr('fleet.send'));
    pause.addEventListener('click', () => control(d.contributorId, { action: 'pause' }));
    resume.addEventListener('click', () => control(d.contributorId, { action: 'resume' }));
    send.addEventListener(
      'click',
      () => text.value.trim() !== '' && control(d.contributorId, { action: 'message', text: text.value.trim() }),
    );
    return h(
      'li',
      {
        class: 'card',
        testid: 'fleet-device',
        'data-id': d.contributorId,
        'data-connected': String(d.connected),
        'data-paused-by': d.status?.pausedBy ?? '',
        'data-remote-paused': String(d.remotePaused),
        'data-jobs': d.jobsDone,
      },
      h(
        'p',
        {},
        h('strong', { testid: 'fleet-device-label' }, d.label ?? t('fleet.unnamed')),
        ' ',
        h('code', { class: 'note' }, d.contributorId),
      ),
      h(
        'dl',
        { class: 'pairs' },
        h('dt', {}, tr('fleet.colState')),
        h('dd', { testid: 'fleet-device-state' }, deviceState(d)),
        h('dt', {}, tr('fleet.colJobs')),
        h('dd', { testid: 'fleet-device-jobs' }, formatNumber(d.jobsDone)),
        h('dt', {}, tr('fleet.colPending')),
        h('dd', { 'data-nano': d.earned.pendingNano }, formatTon(d.earned.pendingNano, 'exact')),
        h('dt', {}, tr('fleet.colSettled')),
        h('dd', { 'data-nano': d.earned.settledNano }, formatTon(d.earned.settledNano, 'exact')),
        h('dt', {}, tr('fleet.colPaid')),
        h('dd', { 'data-nano': d.earned.paidNano }, formatTon(d.earned.paidNano, 'exact')),
      ),
      h('p', { class: 'actions' }, pause, ' ', resume),
      h('p', { class: 'actions' }, h('label', { for: inputId, class: 'sr-only' }, tr('fleet.messageHint')), text, ' ', send),
    );
  };
  // Cards are rebuilt on each refresh; a message being typed is kept.
  const refresh = async (): Promise<void> => {
    const owner = session();
    if (owner === undefined) {
      replace(list);
      empty.hidden = false;
      return;
    }
    const view = await coordinator.fleet(owner);
    const typing = document.activeElement instanceof HTMLInputElement && list.contains(document.activeElement);
    if (typing) return;
    replace(list, ...view.devices.map(card));
    empty.hidden = view.devices.length > 0;
  };
  return refresh;
}

async function main(): Promise<void> {
  await initLanguage();
  const top = document.getElementById('top');
  const header = top === null ? null : mountHeader(top, 'fleet');
  const root = document.getElementById('app');
  if (root === null || header === null) return;
  const config = await resolveConfig(location);
  const error = h('p', { testid: 'fleet-error', class: 'error', role: 'alert' });
  const onError = (err: unknown): void => replace(error, err instanceof Error ? err.message : String(err));
  const reporting = { onError, clearError: () => replace(error) };
  const coordinatorUrl = config.coordinatorUrl;
  if (coordinatorUrl === null) {
    say(error, 'fleet.noCoordinator');
    replace(root, error);
    root.dataset['ready'] = 'true';
    return;
  }
  const walletError = h('p', { testid: 'wallet-error', class: 'error', role: 'alert' });
  const ownerBox = h('section', { class: 'card-section', testid: 'fleet-owner', 'aria-labelledby': 'fleet-owner-h' });
  const tokensBox = h('section', { class: 'card-section', testid: 'fleet-tokens-card' });
  const devicesBox = h('section', { class: 'card-section', testid: 'fleet-devices-card' });
  const hint = h('p', { testid: 'fleet-hint', class: 'hint' }, tr('fleet.connectFirst'));
  const connect = h('button', { type: 'button', class: 'primary', testid: 'fleet-connect' }, tr('fleet.connectOwner'));
  const signOut = h('button', { type: 'button', testid: 'fleet-sign-out', hidden: true }, tr('fleet.signOut'));
  replace(
    ownerBox,
    h('h2', { id: 'fleet-owner-h' }, tr('fleet.ownerTitle')),
    h('p', {}, tr('fleet.ownerExplain')),
    hint,
    h('p', {}, connect, signOut),
  );
  const needs = h(
    'details',
    { class: 'section', testid: 'fleet-needs', open: true },
    h('summary', {}, h('h2', {}, tr('fleet.needsTitle'))),
    h(
      'ol',
      {},
      h('li', {}, tr('fleet.needsBrowser')),
      h('li', {}, tr('fleet.needsAddress')),
      h('li', {}, tr('fleet.needsAwake')),
      h('li', {}, tr('fleet.needsPower')),
      h('li', {}, tr('fleet.needsRevoke')),
    ),
    h('p', { class: 'note' }, tr('fleet.needsMore')),
  );
  replace(
    root,
    h('h1', { class: 'page-title' }, tr('fleet.title')),
    h('p', { class: 'tagline' }, tr('fleet.intro')),
    walletError,
    error,
    ownerBox,
    needs,
    tokensBox,
    devicesBox,
  );
  // The wallet proof is bound to a device key; the worker holds this browser's.
  const bridge = startWorker();
  const coordinator = new CoordinatorClient(coordinatorUrl);
  const wallet = new Wallet({
    coordinator,
    walletsListUrl: config.walletsListUrl,
    bridgeOrigins: config.bridgeOrigins,
    deviceKey: () => bridge.api.deviceKey(),
    // An owner session: the only credential of the fleet routes, 8 h, revoked by Sign out.
    scope: 'owner',
  });
  mountWalletChip(header.walletSlot, wallet, { errorBox: walletError, audience: 'owner' });
  connect.addEventListener('click', () => void wallet.connect());
  // Sign out: the owner session is revoked on the coordinator (Wallet.disconnect with scope "owner").
  signOut.addEventListener('click', () => void wallet.disconnect());
  const refreshTokens = mountTokens(tokensBox, coordinator, () => wallet.session(), reporting);
  const refreshDevices = mountDevices(devicesBox, coordinator, () => wallet.session(), reporting);
  let shown: string | undefined;
  const tick = async (): Promise<void> => {
    const session = wallet.session();
    const phase = wallet.view().phase;
    hint.hidden = session !== undefined;
    connect.hidden = session !== undefined;
    signOut.hidden = session === undefined;
    connect.disabled = phase !== 'none';
    root.dataset['owner'] = session === undefined ? '' : (wallet.wallet() ?? '');
    if (session !== shown) {
      shown = session;
      await refreshTokens();
    }
    await refreshDevices();
  };
  wallet.onChange(() => void tick().catch(onError));
  const loop = (): void =>
    void tick()
      .catch(onError)
      .finally(() => setTimeout(loop, 2_000));
  loop();
  root.dataset['ready'] = 'true';
}

void main();
