/**
 * The TON wallet: connect with TON Connect and prove the wallet to the coordinator with a
 * `ton_proof` bound to this device's key; the coordinator answers with the session token the
 * worker sends in its hello. Nothing of TON Connect (nor @ton/core, nor the wallets list) loads
 * before someone asks to connect, so no request leaves for another host before a click. A proven
 * wallet is kept on this device until its session expires, so a reload shows it at once.
 */
import type { ConnectedWallet, TonConnectUI } from '@tonconnect/ui';
import type { WalletProofRequest } from '../protocol/page-requests.ts';
import type { CoordinatorClient } from './api.ts';
import { language, onLanguage } from './i18n/index.ts';
import { loadWalletsList } from './wallet-list.ts';

/**
 * `none`: no wallet; `opening`: fetching the wallets list and TON Connect; `choosing`: TON
 * Connect's window is open; `verifying`: a wallet answered, its proof is being checked; `proven`.
 */
export type WalletPhase = 'none' | 'opening' | 'choosing' | 'verifying' | 'proven';

export interface WalletView {
  phase: WalletPhase;
  /** The proven wallet's raw address, `0:<hex>`. */
  address?: string;
  /** Its user-friendly form (non-bounceable, the testnet form on testnet). */
  friendly?: string;
  /** TON Connect's chain id: `-239` mainnet, `-3` testnet. */
  chain?: string;
}

export interface WalletOptions {
  /** The coordinator that issues payloads and checks proofs. */
  coordinator: CoordinatorClient;
  /** The wallets list to offer (`?wallets=`, spinneret.json); null: TON Connect's public list. */
  walletsListUrl: string | null;
  /** Wallet bridges the page's CSP allows. */
  bridgeOrigins: readonly string[];
  /** This device's identity key (base64url), from the worker. */
  deviceKey: () => Promise<string>;
  /**
   * `owner`: the fleet page's owner session (8 h, revoked by {@link Wallet.disconnect}), kept
   * apart from the contributor's `device` session (the default), which the hello sends.
   */
  scope?: 'device' | 'owner';
  /** Where the proven wallet is kept; localStorage by default. */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null;
}

interface Kept {
  wallet: string;
  friendly: string;
  chain: string;
  token: string;
  /** When the session expires, ms since the epoch. */
  expiresAt: number;
}

const KEPT = 'spinneret.wallet';

/** TON Connect's window speaks English and Russian only. */
export const modalLanguage = (): 'en' | 'ru' => (language() === 'ru' ? 'ru' : 'en');

export class Wallet {
  readonly #options: WalletOptions;
  readonly #storage: WalletOptions['storage'];
  readonly #listeners = new Set<(view: WalletView) => void>();
  readonly #errorListeners = new Set<(err: unknown) => void>();
  #view: WalletView = { phase: 'none' };
  #token: string | undefined;
  #ui: TonConnectUI | null = null;
  #friendlyOf: ((raw: string, chain: string) => string) | null = null;
  #offered: { offered: string[]; leftOut: string[] } | null = null;

  constructor(options: WalletOptions) {
    this.#options = options;
    this.#storage = options.storage === undefined ? browserStorage() : options.storage;
    const kept = this.#readKept();
    if (kept !== null) {
      this.#token = kept.token;
      this.#view = { phase: 'proven', address: kept.wallet, friendly: kept.friendly, chain: kept.chain };
    }
    onLanguage(() => {
      if (this.#ui !== null) this.#ui.uiOptions = { language: modalLanguage() };
    });
  }

  view(): WalletView {
    return { ...this.#view };
  }

  /** The wallets TON Connect's window offers (`app_name`s) and those left out for an unreachable bridge; null before the list is loaded. */
  offered(): { offered: string[]; leftOut: string[] } | null {
    return this.#offered;
  }

  /** The proven wallet's session token, if any. */
  session(): string | undefined {
    return this.#view.phase === 'proven' ? this.#token : undefined;
  }

  /** The proven wallet's raw address, if any. */
  wallet(): string | undefined {
    return this.#view.phase === 'proven' ? this.#view.address : undefined;
  }

  /** Hears every change of the view; returns the unsubscribe function. */
  onChange(listener: (view: WalletView) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hears what went wrong (the list could not load, a proof was refused). */
  onError(listener: (err: unknown) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /** Fetches the wallets list and TON Connect (first time only), asks the coordinator for a proof payload and opens TON Connect's window. */
  async connect(): Promise<void> {
    if (this.#view.phase !== 'none') return;
    this.#set({ phase: 'opening' });
    try {
      const ui = await this.#loadUi();
      await ui.connectionRestored;
      // A connection TON Connect kept from before carries no fresh proof: start over.
      if (ui.connected && this.#phase() === 'opening') await ui.disconnect();
      ui.setConnectRequestParameters({ state: 'loading' });
      const deviceKey = await this.#options.deviceKey();
      const { payload } = await this.#options.coordinator.walletPayload(deviceKey);
      ui.setConnectRequestParameters({ state: 'ready', value: { tonProof: payload } });
      this.#set({ phase: 'choosing' });
      await ui.openModal();
    } catch (err) {
      this.#set({ phase: 'none' });
      this.#fail(err);
    }
  }

  /** Forgets the wallet here (and in TON Connect, when it is connected); an owner session is also revoked on the coordinator. */
  async disconnect(): Promise<void> {
    const token = this.#token;
    this.#forget();
    if (this.#options.scope === 'owner' && token !== undefined) {
      // Signed out on the coordinator too, so a copy of the token left anywhere works nowhere.
      await this.#options.coordinator.signOutOwner(token).catch((err: unknown) => this.#fail(err));
    }
    const ui = this.#ui;
    if (ui?.connected === true) await ui.disconnect().catch((err: unknown) => this.#fail(err));
  }

  /** Where this scope's session is kept: the fleet page's owner session never lands where the contributor page looks. */
  #kept(): string {
    return this.#options.scope === 'owner' ? `${KEPT}.owner` : KEPT;
  }

  #forget(): void {
    this.#token = undefined;
    this.#storage?.removeItem(this.#kept());
    this.#set({ phase: 'none' });
  }

  async #loadUi(): Promise<TonConnectUI> {
    if (this.#ui !== null) return this.#ui;
    const list = loadWalletsList({
      source: this.#options.walletsListUrl,
      allowedOrigins: this.#options.bridgeOrigins,
      pageUrl: location.href,
      online: navigator.onLine,
    });
    // @ton/core expects Node's Buffer as a global; it must exist before the module loads.
    const modules = import('buffer').then(async ({ Buffer }) => {
      (globalThis as { Buffer?: unknown }).Buffer ??= Buffer;
      return Promise.all([import('@tonconnect/ui'), import('@ton/core')]);
    });
    const [offered, [{ TonConnect, TonConnectUI }, { Address }]] = await Promise.all([list, modules]);
    this.#offered = { offered: offered.offered, leftOut: offered.leftOut };
    this.#friendlyOf = (raw, chain) => Address.parse(raw).toString({ bounceable: false, testOnly: chain === '-3' });
    const connector = new TonConnect({
      manifestUrl: new URL('/tonconnect-manifest.json', location.href).href,
      analytics: { mode: 'off' },
      walletsListSource: offered.source,
    });
    const ui = new TonConnectUI({ connector, analytics: { mode: 'off' }, language: modalLanguage() });
    ui.onStatusChange(
      (wallet) => void this.#status(wallet),
      (err) => this.#fail(err),
    );
    ui.onModalStateChange((state) => {
      // Closed without choosing a wallet: Connect is usable again.
      if (state.status === 'closed' && this.#view.phase === 'choosing' && state.closeReason !== 'wallet-selected')
        this.#set({ phase: 'none' });
    });
    this.#ui = ui;
    return ui;
  }

  async #status(wallet: ConnectedWallet | null): Promise<void> {
    if (wallet === null) {
      if (this.#view.phase === 'proven' || this.#view.phase === 'verifying') this.#forget();
      return;
    }
    const reply = wallet.connectItems?.tonProof;
    if (reply === undefined || !('proof' in reply)) {
      // A connection restored without a proof: kept only when this device proved that wallet before.
      if (this.#view.phase === 'proven' && this.#view.address === wallet.account.address) return;
      return;
    }
    this.#set({ phase: 'verifying' });
    try {
      const body = {
        deviceKey: await this.#options.deviceKey(),
        ...(this.#options.scope === 'owner' && { scope: 'owner' as const }),
        address: wallet.account.address,
        // TON Connect's chain is any string; one the coordinator does not serve it refuses (400).
        network: wallet.account.chain as WalletProofRequest['network'],
        ...(wallet.account.publicKey !== undefined && { publicKey: wallet.account.publicKey }),
        proof: { ...reply.proof, ...(wallet.account.walletStateInit !== undefined && { stateInit: wallet.account.walletStateInit }) },
      };
      const answer = await this.#options.coordinator.walletProof(body);
      const chain = wallet.account.chain;
      const friendly = this.#friendlyOf?.(answer.wallet, chain) ?? answer.wallet;
      const kept: Kept = {
        wallet: answer.wallet,
        friendly,
        chain,
        token: answer.session,
        expiresAt: answer.expiresAt,
      };
      this.#token = kept.token;
      try {
        this.#storage?.setItem(this.#kept(), JSON.stringify(kept));
      } catch {
        // Not kept: the wallet holds for this page only.
      }
      this.#set({ phase: 'proven', address: kept.wallet, friendly, chain });
    } catch (err) {
      this.#forget();
      this.#fail(err);
      // An unproven wallet earns nothing here; drop it so the next try asks again.
      void this.#ui?.disconnect().catch(() => undefined);
    }
  }

  #readKept(): Kept | null {
    try {
      const kept = JSON.parse(this.#storage?.getItem(this.#kept()) ?? 'null') as Partial<Kept> | null;
      if (kept === null || typeof kept.token !== 'string' || typeof kept.wallet !== 'string' || !(Number(kept.expiresAt) > Date.now()))
        return null;
      return {
        wallet: kept.wallet,
        friendly: typeof kept.friendly === 'string' ? kept.friendly : kept.wallet,
        chain: typeof kept.chain === 'string' ? kept.chain : '-239',
        token: kept.token,
        expiresAt: Number(kept.expiresAt),
      };
    } catch {
      return null;
    }
  }

  #phase(): WalletPhase {
    return this.#view.phase;
  }

  #set(view: WalletView): void {
    this.#view = view;
    for (const listener of this.#listeners) listener(this.view());
  }

  #fail(err: unknown): void {
    for (const listener of this.#errorListeners) listener(err);
  }
}

function browserStorage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}
