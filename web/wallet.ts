/**
 * The "Wallet" card: connect a TON wallet with TON Connect, prove it with `ton_proof` to the
 * coordinator, and keep the session token the worker sends in its hello. @tonconnect/ui and
 * @ton/core load only when the card mounts, to keep them out of the first bundle.
 */
import type { ConnectedWallet, TonConnectUI } from '@tonconnect/ui';
import { h, replace, tr } from './dom.ts';
import { t } from './i18n/index.ts';

export interface WalletCardOptions {
  /** Base URL of the coordinator that issues payloads and checks proofs. */
  coordinatorUrl: string;
  /** TON Connect wallets list; null: the SDK's public one. */
  walletsListUrl: string | null;
  /** This device's identity key (base64url), from the worker. */
  deviceKey: () => Promise<string>;
  onError: (err: unknown) => void;
}

/** What the rest of the page reads from the card. */
export interface WalletCard {
  /** The proven wallet's session token, if any. */
  session(): string | undefined;
  /** The proven wallet's raw address (`0:<hex>`), if any. */
  wallet(): string | undefined;
}

/** A refusal from the coordinator's wallet routes. */
export class WalletProofError extends Error {
  override readonly name = 'WalletProofError';
  constructor(
    message: string,
    /** The verifier's reason, e.g. `domain-not-allowed`, `signature-invalid`. */
    readonly reason: string,
  ) {
    super(message);
  }
}

const NETWORKS: Record<string, string> = { '-239': 'mainnet', '-3': 'testnet' };
const TOKEN_KEY = 'spinneret.walletSession';

export async function mountWallet(box: HTMLElement, options: WalletCardOptions): Promise<WalletCard> {
  const state = h('p', { testid: 'wallet-state', role: 'status' }, tr('wallet.loading'));
  const details = h('dl', { testid: 'wallet-details' });
  const error = h('p', { testid: 'wallet-error', class: 'error', role: 'alert' });
  const connect = h('button', { testid: 'wallet-connect', type: 'button', disabled: true }, tr('wallet.connect'));
  const disconnect = h('button', { testid: 'wallet-disconnect', type: 'button', disabled: true }, tr('wallet.disconnect'));
  replace(
    box,
    h('h2', { id: 'wallet-h' }, tr('wallet.title')),
    h('p', { class: 'note' }, tr('wallet.explain')),
    h('p', {}, connect, disconnect),
    state,
    details,
    error,
  );

  // @ton/core expects Node's Buffer as a global; it must exist before the module loads.
  const { Buffer } = await import('buffer');
  const global = globalThis as { Buffer?: unknown };
  global.Buffer ??= Buffer;
  const [{ TonConnect, TonConnectUI }, { Address }] = await Promise.all([import('@tonconnect/ui'), import('@ton/core')]);

  const stored = (): { wallet: string; token: string } | null => {
    const raw = sessionStorage.getItem(TOKEN_KEY);
    return raw === null ? null : (JSON.parse(raw) as { wallet: string; token: string });
  };
  let token: string | undefined;
  let address: string | undefined;
  const connector = new TonConnect({
    manifestUrl: new URL('/tonconnect-manifest.json', location.href).href,
    analytics: { mode: 'off' },
    ...(options.walletsListUrl !== null && { walletsListSource: options.walletsListUrl }),
  });
  const ui: TonConnectUI = new TonConnectUI({ connector, analytics: { mode: 'off' } });

  const showError = (err: unknown): void => {
    const reason = err instanceof WalletProofError ? err.reason : '';
    error.dataset['reason'] = reason;
    replace(error, err instanceof Error ? err.message : String(err));
  };

  const render = (wallet: ConnectedWallet | null, proven: boolean): void => {
    connect.disabled = wallet !== null;
    disconnect.disabled = wallet === null;
    box.dataset['state'] = wallet === null ? 'disconnected' : proven ? 'proven' : 'connected';
    if (wallet === null) {
      replace(state, tr('wallet.none'));
      replace(details);
      return;
    }
    const { address, chain } = wallet.account;
    replace(state, tr(proven ? 'wallet.proven' : 'wallet.verifying'));
    replace(
      details,
      h('dt', {}, tr('wallet.address')),
      h('dd', { testid: 'wallet-address' }, Address.parse(address).toString({ bounceable: false, testOnly: chain === '-3' })),
      h('dt', {}, tr('wallet.network')),
      h('dd', { testid: 'wallet-network' }, NETWORKS[chain] ?? chain),
    );
  };

  const prove = async (wallet: ConnectedWallet): Promise<void> => {
    const reply = wallet.connectItems?.tonProof;
    const kept = stored();
    if (reply === undefined || !('proof' in reply)) {
      // A connection restored after a reload: reuse this tab's token, else ask for a new proof.
      if (kept !== null && kept.wallet === wallet.account.address) {
        token = kept.token;
        address = kept.wallet;
        render(wallet, true);
        return;
      }
      await ui.disconnect();
      return;
    }
    const body = {
      deviceKey: await options.deviceKey(),
      address: wallet.account.address,
      network: wallet.account.chain,
      ...(wallet.account.publicKey !== undefined && { publicKey: wallet.account.publicKey }),
      proof: { ...reply.proof, ...(wallet.account.walletStateInit !== undefined && { stateInit: wallet.account.walletStateInit }) },
    };
    const answer = await post<{ session: string; wallet: string }>(options.coordinatorUrl, '/v1/wallet/proof', body);
    token = answer.session;
    address = answer.wallet;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ wallet: answer.wallet, token }));
    render(wallet, true);
  };

  ui.onStatusChange(
    (wallet) => {
      render(wallet, false);
      if (wallet === null) {
        token = undefined;
        address = undefined;
        sessionStorage.removeItem(TOKEN_KEY);
        return;
      }
      prove(wallet).catch((err: unknown) => {
        showError(err);
        // An unproven wallet earns nothing here; drop it so the user can try again.
        void ui.disconnect().catch(options.onError);
      });
    },
    (err) => showError(err),
  );

  connect.addEventListener('click', () => {
    connect.disabled = true;
    replace(error);
    ui.setConnectRequestParameters({ state: 'loading' });
    options
      .deviceKey()
      .then((deviceKey) => post<{ payload: string }>(options.coordinatorUrl, '/v1/wallet/payload', { deviceKey }))
      .then(({ payload }) => {
        ui.setConnectRequestParameters({ state: 'ready', value: { tonProof: payload } });
        return ui.openModal();
      })
      .catch((err: unknown) => {
        connect.disabled = false;
        showError(err);
      });
  });
  disconnect.addEventListener('click', () => void ui.disconnect().catch(options.onError));

  await ui.connectionRestored;
  if (!ui.connected) render(null, false);
  return { session: () => token, wallet: () => address };
}

async function post<T>(base: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(new URL(`${base.replace(/\/+$/, '')}${path}`), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = (await response.json()) as T & { error?: { message?: string; reason?: string } };
  if (!response.ok) {
    const message = data.error?.message ?? t('wallet.httpError', { status: response.status });
    throw new WalletProofError(message, data.error?.reason ?? `http-${response.status}`);
  }
  return data;
}
