/**
 * The wallet in the header: a Connect button, or a chip with the proven wallet's short address
 * and network that opens to the full address, Copy, the explorer and Disconnect. Errors are
 * said in words in `errorBox` (beside the status band), with what to do.
 */
import { CoordinatorError } from './api.ts';
import { h, replace, tr } from './dom.ts';
import { onLanguage } from './i18n/index.ts';
import type { Wallet, WalletView } from './wallet.ts';
import { WalletsListError } from './wallet-list.ts';

const NETWORKS: Record<string, string> = { '-239': 'mainnet', '-3': 'testnet' };

/** `UQBvW8…aD3x`: enough to recognise a wallet at a glance. */
export function shortAddress(friendly: string): string {
  return friendly.length <= 12 ? friendly : `${friendly.slice(0, 6)}…${friendly.slice(-4)}`;
}

/** A block explorer page for the address; null where there is none (a local chain). */
export function explorerFor(friendly: string, chain: string | undefined): string | null {
  if (chain === '-3') return `https://testnet.tonviewer.com/${friendly}`;
  if (chain === '-239') return `https://tonviewer.com/${friendly}`;
  return null;
}

export interface WalletChipOptions {
  /** Where errors are said (role=alert). */
  errorBox: HTMLElement;
  /** `owner` on the fleet page: the wallet the enrolled machines earn for. */
  audience?: 'contributor' | 'owner';
}

export function mountWalletChip(slot: HTMLElement, wallet: Wallet, options: WalletChipOptions): void {
  const { errorBox } = options;
  const connect = h('button', { type: 'button', testid: 'wallet-connect', class: 'chip-button' });
  connect.addEventListener('click', () => {
    replace(errorBox);
    delete errorBox.dataset['reason'];
    void wallet.connect();
  });
  const render = (view: WalletView): void => {
    slot.dataset['state'] =
      view.phase === 'proven' ? 'proven' : view.phase === 'verifying' ? 'connected' : view.phase === 'none' ? 'disconnected' : 'connecting';
    slot.dataset['phase'] = view.phase;
    const offered = wallet.offered();
    if (offered !== null) {
      slot.dataset['offered'] = offered.offered.join(' ');
      slot.dataset['leftOut'] = offered.leftOut.join(' ');
    }
    if (view.phase !== 'proven') {
      connect.disabled = view.phase !== 'none';
      // A phone's header shows the short word.
      replace(
        connect,
        h('span', { class: 'long' }, tr(`wallet.button_${view.phase}`)),
        h('span', { class: 'short' }, tr(view.phase === 'none' ? 'wallet.buttonShort' : `wallet.button_${view.phase}`)),
      );
      replace(slot, connect);
      return;
    }
    const friendly = view.friendly ?? view.address ?? '';
    const network = NETWORKS[view.chain ?? ''] ?? view.chain ?? '';
    const copy = h('button', { type: 'button', testid: 'wallet-copy' }, tr('wallet.copy'));
    copy.addEventListener('click', () => {
      void navigator.clipboard
        ?.writeText(friendly)
        .then(() => replace(copy, tr('wallet.copied')))
        .catch(() => replace(copy, tr('wallet.copyFailed')));
    });
    const disconnect = h('button', { type: 'button', testid: 'wallet-disconnect' }, tr('wallet.disconnect'));
    disconnect.addEventListener('click', () => {
      const was = friendly;
      void wallet.disconnect().then(() => {
        replace(errorBox, tr('wallet.disconnected', { address: shortAddress(was) }));
        errorBox.dataset['reason'] = 'disconnected';
      });
    });
    const explorer = explorerFor(friendly, view.chain);
    const menu = h(
      'div',
      { class: 'chip-menu' },
      h('p', { class: 'note' }, tr(options.audience === 'owner' ? 'wallet.provenOwner' : 'wallet.proven')),
      h('p', { class: 'mono', testid: 'wallet-address' }, friendly),
      h('p', {}, h('span', { class: 'badge', testid: 'wallet-network' }, network), ' ', copy, ' ', disconnect),
      explorer === null
        ? null
        : h('p', {}, h('a', { href: explorer, rel: 'noopener noreferrer', target: '_blank' }, tr('wallet.explorer'))),
    );
    const chip = h(
      'details',
      { class: 'chip' },
      h(
        'summary',
        { testid: 'wallet-chip' },
        h('span', { class: 'mono' }, shortAddress(friendly)),
        ' ',
        h('span', { class: 'badge' }, network),
      ),
      menu,
    );
    replace(slot, chip);
  };
  wallet.onChange((view) => {
    if (view.phase === 'proven') {
      replace(errorBox);
      delete errorBox.dataset['reason'];
    }
    render(view);
  });
  wallet.onError((err) => {
    errorBox.dataset['reason'] = refusal(err) ? err.reason : err instanceof WalletsListError ? `list-${err.reason}` : 'error';
    replace(errorBox, ...errorWords(err));
  });
  onLanguage(() => render(wallet.view()));
  render(wallet.view());
}

/** What went wrong with the wallet, and what to do, in words. */
function errorWords(err: unknown): (Node | string)[] {
  if (err instanceof WalletsListError) return [tr(`wallet.list_${err.reason}`)];
  if (refusal(err)) return [tr('wallet.refused'), ' ', err.message];
  return [tr('wallet.failed'), ' ', err instanceof Error ? err.message : String(err)];
}

/** An answer from the coordinator that refused the wallet (an unreachable coordinator is no refusal). */
const refusal = (err: unknown): err is CoordinatorError => err instanceof CoordinatorError && err.reason !== 'unreachable';
