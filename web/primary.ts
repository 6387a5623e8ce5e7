/**
 * The one primary control: Start / Stop. Start asks for a wallet first: without a proven wallet
 * it opens a choice, "Connect wallet" (and start once it is proven) or "Run unpaid", said
 * plainly. On a phone it sits in a bar fixed to the bottom of the screen.
 */
import { h, replace, tr } from './dom.ts';
import { language, onLanguage } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';
import type { Wallet } from './wallet.ts';

export interface PrimaryOptions {
  store: Store<PageState>;
  /** Starts contributing with the wallet's session, or none (unpaid). */
  start: (session: string | undefined) => Promise<unknown>;
  stop: () => Promise<unknown>;
  onError: (err: unknown) => void;
}

/** The button is drawn before the page knows its network; the page tells it then. */
export interface Primary {
  /** The page's network is known: its wallet (null without a network, when Start cannot do anything). */
  attach(wallet: Wallet | null, available: boolean): void;
}

export function mountPrimary(bar: HTMLElement, options: PrimaryOptions): Primary {
  const { store } = options;
  let wallet: Wallet | null = null;
  let available = true;
  const toggle = h('button', { type: 'button', class: 'primary', testid: 'contrib-toggle', 'aria-pressed': 'false' });
  const connect = h('button', { type: 'button', testid: 'choice-connect' }, tr('contrib.choiceConnect'));
  const unpaid = h('button', { type: 'button', testid: 'contrib-unpaid', class: 'secondary' }, tr('contrib.choiceUnpaid'));
  const later = h('button', { type: 'button', testid: 'choice-cancel', class: 'link' }, tr('contrib.choiceCancel'));
  const korean = h('p', { class: 'note', hidden: true }, tr('wallet.modalLanguage'));
  const choice = h(
    'div',
    { class: 'choice', testid: 'contrib-choice', role: 'group', 'aria-labelledby': 'choice-h', hidden: true },
    h('p', { id: 'choice-h' }, tr('contrib.choiceAsk')),
    h('p', { class: 'choice-buttons' }, connect, unpaid, later),
    h('p', { class: 'note' }, tr('contrib.choiceUnpaidNote')),
    korean,
  );
  const privacy = h('p', { class: 'note privacy' }, tr('contrib.privacyShort'), ' ', h('a', { href: '#about' }, tr('contrib.privacyMore')));
  replace(bar, choice, h('div', { class: 'primary-row' }, toggle, privacy));

  let busy = false;
  let startAfterProof = false;
  const running = (): boolean => {
    const s = store.get().status;
    return s !== null && s.state !== 'idle';
  };
  const draw = (): void => {
    const on = running();
    const proven = wallet?.session() !== undefined;
    toggle.setAttribute('aria-pressed', String(on));
    toggle.dataset['on'] = String(on);
    replace(toggle, tr(on ? 'contrib.stop' : proven ? 'contrib.startPaid' : 'contrib.start'));
    // Never disabled while busy: a disabled button drops the focus to <body>.
    toggle.disabled = !on && !available;
    toggle.setAttribute('aria-busy', String(busy));
    const phase = wallet?.view().phase ?? 'none';
    connect.disabled = phase !== 'none';
    replace(connect, tr(phase === 'none' ? 'contrib.choiceConnect' : `wallet.button_${phase}`));
    korean.hidden = language() !== 'ko';
    if (on) choice.hidden = true;
  };
  const run = (action: () => Promise<unknown>): void => {
    if (busy) return;
    busy = true;
    draw();
    action()
      .catch(options.onError)
      .finally(() => {
        busy = false;
        draw();
      });
  };
  const start = (session: string | undefined): void => {
    choice.hidden = true;
    toggle.focus();
    run(() => options.start(session));
  };
  toggle.addEventListener('click', () => {
    if (running()) return run(options.stop);
    const session = wallet?.session();
    if (session !== undefined || wallet === null) return start(session);
    // No wallet yet: ask first, and say plainly what running without one means.
    choice.hidden = false;
    draw();
    connect.focus();
  });
  connect.addEventListener('click', () => {
    startAfterProof = true;
    void wallet?.connect();
  });
  unpaid.addEventListener('click', () => {
    startAfterProof = false;
    start(undefined);
  });
  later.addEventListener('click', () => {
    startAfterProof = false;
    choice.hidden = true;
    toggle.focus();
  });
  store.subscribe(draw);
  onLanguage(draw);
  return {
    attach(attached, canStart) {
      wallet = attached;
      available = canStart;
      attached?.onChange((view) => {
        if (view.phase === 'proven' && startAfterProof && !running()) {
          startAfterProof = false;
          start(attached.session());
        }
        draw();
      });
      draw();
    },
  };
}
