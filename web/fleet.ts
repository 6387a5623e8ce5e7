/**
 * The owner's fleet page (fleet.html): prove the wallet, issue and revoke enrollment tokens
 * (each shows the kiosk address to open on a machine), and watch and steer the machines that
 * earn for the wallet: status, jobs, earnings, pause, resume, a message on their screen.
 */
import { startWorker } from './bridge.ts';
import { resolveConfig } from './config.ts';
import { h, replace, say, tr, trAttr } from './dom.ts';
import { formatTon } from './earnings.ts';
import { formatNumber, initLanguage, t } from './i18n/index.ts';
import { kioskUrl } from './kiosk-config.ts';
import { mountHeader } from './shell.ts';
import { mountWallet, type WalletCard } from './wallet.ts';

/** What `GET /v1/fleet` answers (coordinator/fleet/fleet.ts). */
interface FleetDevice {
  contributorId: string;
  label: string | null;
  connected: boolean;
  lastSeenAt: number | null;
  status: { visibility: string; pausedBy: string | null; pace: { jobsPerMinute: number } | null } | null;
  remotePaused: boolean;
  jobsDone: number;
  earned: { pendingNano: string; settledNano: string; paidNano: string };
}
interface TokenView {
  id: string;
  label: string;
  scope: 'contribute' | 'monitor';
  expiresAt: number;
  maxDevices: number;
  devices: number;
  state: 'active' | 'expired' | 'revoked';
}

const TTL_CHOICES: [number, string][] = [
  [24 * 3_600_000, 'fleet.ttlDay'],
  [7 * 24 * 3_600_000, 'fleet.ttlWeek'],
  [30 * 24 * 3_600_000, 'fleet.ttlMonth'],
  [365 * 24 * 3_600_000, 'fleet.ttlYear'],
];
const TOKEN_STATES = { active: 'fleet.tokenActive', expired: 'fleet.tokenExpired', revoked: 'fleet.tokenRevoked' };

class FleetApiError extends Error {
  override readonly name = 'FleetApiError';
}

async function call<T>(base: string, session: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(new URL(`${base.replace(/\/+$/, '')}/v1${path}`), {
    method,
    headers: { authorization: `Bearer ${session}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const data = (await response.json().catch(() => ({}))) as T & { error?: { message?: string } };
  if (!response.ok) throw new FleetApiError(data.error?.message ?? `HTTP ${response.status}`);
  return data;
}

function deviceState(d: FleetDevice): string {
  if (!d.connected) return t('fleet.offline', { when: d.lastSeenAt === null ? '—' : new Date(d.lastSeenAt).toLocaleString() });
  if (d.status?.pausedBy === 'remote' || (d.remotePaused && d.status === null)) return t('fleet.pausedByYou');
  if (d.status?.pausedBy) return t('fleet.pausedByRule', { rule: d.status.pausedBy });
  if (d.status === null) return t('fleet.online');
  return t('fleet.onlinePace', { pace: formatNumber(d.status.pace?.jobsPerMinute ?? 0, { maximumFractionDigits: 1 }) });
}

interface Reporting {
  onError: (err: unknown) => void;
  clearError: () => void;
}

function mountTokens(box: HTMLElement, coordinatorUrl: string, session: () => string | undefined, { onError, clearError }: Reporting) {
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
  const form = h(
    'form',
    {},
    h('p', {}, h('label', { for: 'fleet-token-label' }, tr('fleet.label')), ' ', label),
    h(
      'p',
      {},
      h('label', { for: 'fleet-token-ttl' }, tr('fleet.ttl')),
      ' ',
      ttl,
      ' ',
      h('label', { for: 'fleet-token-max' }, tr('fleet.maxDevices')),
      ' ',
      max,
    ),
    h('p', {}, h('label', { for: 'fleet-token-scope' }, tr('fleet.scope')), ' ', scope, ' ', issue),
  );
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
          call(coordinatorUrl, owner, 'DELETE', `/enrollment-tokens/${token.id}`).then(refresh, onError);
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
          tr('fleet.tokenDevices', { used: token.devices, max: token.maxDevices, until: new Date(token.expiresAt).toLocaleString() }),
          ' ',
          revoke,
        );
      }),
    );
  };
  const refresh = async (): Promise<void> => {
    const owner = session();
    if (owner !== undefined) render((await call<{ tokens: TokenView[] }>(coordinatorUrl, owner, 'GET', '/enrollment-tokens')).tokens);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const owner = session();
    if (owner === undefined) return onError(new FleetApiError(t('fleet.connectFirst')));
    const body = { label: label.value.trim(), ttlMs: Number(ttl.value), maxDevices: Number(max.value), scope: scope.value };
    issue.disabled = true;
    clearError();
    call<{ secret: string; label: string; scope: string }>(coordinatorUrl, owner, 'POST', '/enrollment-tokens', body)
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

function mountDevices(box: HTMLElement, coordinatorUrl: string, session: () => string | undefined, { onError, clearError }: Reporting) {
  const table = h('tbody', { testid: 'fleet-devices' });
  const empty = h('p', { testid: 'fleet-empty', class: 'note' }, tr('fleet.noDevices'));
  replace(
    box,
    h('h2', {}, tr('fleet.devicesTitle')),
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...[
            'fleet.colDevice',
            'fleet.colState',
            'fleet.colJobs',
            'fleet.colPending',
            'fleet.colSettled',
            'fleet.colPaid',
            'fleet.colActions',
          ].map((k) => h('th', {}, tr(k))),
        ),
      ),
      table,
    ),
    empty,
  );
  const control = (id: string, body: { action: string; text?: string }): void => {
    const owner = session();
    clearError();
    if (owner !== undefined) call(coordinatorUrl, owner, 'POST', `/fleet/${id}/control`, body).then(refresh, onError);
  };
  const row = (d: FleetDevice): HTMLElement => {
    const pause = h('button', { type: 'button', testid: 'fleet-pause', disabled: d.remotePaused }, tr('fleet.pause'));
    const resume = h('button', { type: 'button', testid: 'fleet-resume', disabled: !d.remotePaused }, tr('fleet.resume'));
    const text = trAttr(h('input', { testid: 'fleet-message-text', maxlength: 500 }), 'placeholder', 'fleet.messageHint');
    const send = h('button', { type: 'button', testid: 'fleet-message-send' }, tr('fleet.send'));
    pause.addEventListener('click', () => control(d.contributorId, { action: 'pause' }));
    resume.addEventListener('click', () => control(d.contributorId, { action: 'resume' }));
    send.addEventListener(
      'click',
      () => text.value.trim() !== '' && control(d.contributorId, { action: 'message', text: text.value.trim() }),
    );
    return h(
      'tr',
      {
        testid: 'fleet-device',
        'data-id': d.contributorId,
        'data-connected': String(d.connected),
        'data-paused-by': d.status?.pausedBy ?? '',
        'data-remote-paused': String(d.remotePaused),
        'data-jobs': d.jobsDone,
      },
      h(
        'td',
        {},
        h('strong', { testid: 'fleet-device-label' }, d.label ?? t('fleet.unnamed')),
        h('br', {}),
        h('code', { class: 'note' }, d.contributorId),
      ),
      h('td', { testid: 'fleet-device-state' }, deviceState(d)),
      h('td', { testid: 'fleet-device-jobs' }, formatNumber(d.jobsDone)),
      h('td', { 'data-nano': d.earned.pendingNano }, formatTon(d.earned.pendingNano)),
      h('td', { 'data-nano': d.earned.settledNano }, formatTon(d.earned.settledNano)),
      h('td', { 'data-nano': d.earned.paidNano }, formatTon(d.earned.paidNano)),
      h('td', {}, pause, ' ', resume, h('br', {}), text, ' ', send),
    );
  };
  // Rows are rebuilt on each refresh; a message being typed is kept.
  const refresh = async (): Promise<void> => {
    const owner = session();
    if (owner === undefined) return;
    const view = await call<{ devices: FleetDevice[] }>(coordinatorUrl, owner, 'GET', '/fleet');
    const typing = document.activeElement instanceof HTMLInputElement && table.contains(document.activeElement);
    if (typing) return;
    replace(table, ...view.devices.map(row));
    empty.hidden = view.devices.length > 0;
  };
  return refresh;
}

async function main(): Promise<void> {
  initLanguage();
  const header = document.getElementById('top');
  if (header !== null) mountHeader(header);
  const root = document.getElementById('app');
  if (root === null) return;
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
  const walletBox = h('section', { class: 'card', testid: 'wallet' });
  const tokensBox = h('section', { class: 'card', testid: 'fleet-tokens-card' });
  const devicesBox = h('section', { class: 'card', testid: 'fleet-devices-card' });
  const hint = h('p', { testid: 'fleet-hint', class: 'note' }, tr('fleet.connectFirst'));
  replace(
    root,
    h('h2', {}, tr('fleet.title')),
    h('p', { class: 'note' }, tr('fleet.intro')),
    walletBox,
    hint,
    error,
    tokensBox,
    devicesBox,
  );
  // The wallet proof is bound to a device key; the worker holds this browser's.
  const bridge = startWorker();
  const card: WalletCard = await mountWallet(walletBox, {
    coordinatorUrl,
    walletsListUrl: config.walletsListUrl,
    deviceKey: () => bridge.api.deviceKey(),
    onError,
  });
  const refreshTokens = mountTokens(tokensBox, coordinatorUrl, () => card.session(), reporting);
  const refreshDevices = mountDevices(devicesBox, coordinatorUrl, () => card.session(), reporting);
  let shown: string | undefined;
  const tick = async (): Promise<void> => {
    const session = card.session();
    hint.hidden = session !== undefined;
    root.dataset['owner'] = session === undefined ? '' : (card.wallet() ?? '');
    if (session === undefined) return;
    if (session !== shown) {
      shown = session;
      await refreshTokens();
    }
    await refreshDevices();
  };
  const loop = (): void =>
    void tick()
      .catch(onError)
      .finally(() => setTimeout(loop, 2_000));
  loop();
  root.dataset['ready'] = 'true';
}

void main();
