/**
 * The parts of the page that need neither the worker nor the network: the header (name, the
 * link to the other page, the wallet's place, the language), the update banner, the offline
 * notice, and what Spinneret is.
 */
import { registerSW } from 'virtual:pwa-register';
import { h, replace, tr, trAttr } from './dom.ts';
import { isLanguage, language, LANGUAGE_NAMES, LANGUAGES, onLanguage, setLanguage } from './i18n/index.ts';

export interface Header {
  /** Where the wallet chip goes. */
  walletSlot: HTMLElement;
}

/** `page`: which page this is; the header links to the other one. */
export function mountHeader(header: HTMLElement, page: 'dashboard' | 'fleet'): Header {
  const select = h(
    'select',
    { id: 'language', testid: 'language', class: 'compact' },
    ...LANGUAGES.map((l) => h('option', { value: l, lang: l }, LANGUAGE_NAMES[l])),
  );
  select.value = language();
  select.addEventListener('change', () => void (isLanguage(select.value) && setLanguage(select.value)));
  onLanguage((lang) => (select.value = lang));
  const update = h('div', { testid: 'update-banner', class: 'banner', role: 'status', hidden: true });
  const offline = h('div', { testid: 'offline', class: 'banner offline', hidden: true });
  const walletSlot = h('div', { class: 'wallet-slot', testid: 'wallet' });
  const other =
    page === 'dashboard'
      ? h('a', { href: withConfig('/fleet.html'), testid: 'fleet-link', class: 'top-link' }, tr('app.fleetLink'))
      : h('a', { href: withConfig('/'), testid: 'dashboard-link', class: 'top-link' }, tr('app.dashboardLink'));
  replace(
    header,
    h(
      'div',
      { class: 'top-row' },
      h(
        'a',
        { class: 'brand', href: '/' },
        h('img', { src: '/icon.svg', alt: '', width: 28, height: 28 }),
        h('span', { class: 'name' }, tr('app.title')),
      ),
      trAttr(h('nav', { class: 'top-nav' }, other), 'aria-label', 'app.navLabel'),
      walletSlot,
      h('label', { class: 'lang' }, h('span', { class: 'sr-only' }, tr('app.language')), select),
    ),
    update,
    offline,
  );
  mountOfflineNotice(offline);
  registerUpdates(update);
  return { walletSlot };
}

/** `path` with the page settings given in this page's address (`?coordinator=`, `?manifest=`, `?wallets=`), so the other page uses the same network. */
export function withConfig(path: string, search = location.search): string {
  const from = new URLSearchParams(search);
  const kept = new URLSearchParams();
  for (const key of ['coordinator', 'manifest', 'wallets']) {
    const value = from.get(key);
    if (value !== null) kept.set(key, value);
  }
  const query = kept.toString();
  return query === '' ? path : `${path}?${query}`;
}

/** Says what needs the network while the browser is offline. */
function mountOfflineNotice(box: HTMLElement): void {
  const render = (): void => {
    box.hidden = navigator.onLine;
    if (navigator.onLine) return replace(box);
    replace(
      box,
      h('strong', {}, tr('app.offlineTitle')),
      h('ul', {}, h('li', {}, tr('app.offlineModels')), h('li', {}, tr('app.offlineJobs')), h('li', {}, tr('app.offlineWallet'))),
      h('p', {}, tr('app.offlineWorks')),
    );
  };
  addEventListener('online', render);
  addEventListener('offline', render);
  render();
}

/** The service worker: a new version waits until the person chooses to reload. */
function registerUpdates(banner: HTMLElement): void {
  if (!('serviceWorker' in navigator)) return;
  const reload = registerSW({
    onNeedRefresh() {
      const button = h('button', { type: 'button', testid: 'update-reload' }, tr('app.updateReload'));
      button.addEventListener('click', () => void reload(true));
      const later = h('button', { type: 'button', testid: 'update-later' }, tr('app.updateLater'));
      later.addEventListener('click', () => (banner.hidden = true));
      replace(banner, tr('app.updateReady'), ' ', button, ' ', later);
      banner.hidden = false;
    },
    onRegisterError(error: unknown) {
      console.warn('service worker registration failed', error);
    },
  });
}

/** What Spinneret does, what runs here, what this machine sees, what it earns. */
export function introParts(): HTMLElement[] {
  return [
    h('p', {}, tr('app.introWhat')),
    h('p', {}, tr('app.introRuns')),
    h('p', {}, h('strong', {}, tr('app.introSees'))),
    h('p', {}, tr('app.introEarns')),
  ];
}

/** A collapsible section of the page; its heading is the summary. `open` is remembered per id. */
export function section(id: string, title: string, body: HTMLElement, open = false): HTMLDetailsElement {
  const key = `spinneret.section.${id}`;
  let remembered: string | null = null;
  try {
    remembered = localStorage.getItem(key);
  } catch {
    // Storage denied: sections start as given.
  }
  const details = h('details', { id, testid: `section-${id}`, class: 'section' }, h('summary', {}, h('h2', {}, tr(title))), body);
  details.open = remembered === null ? open : remembered === '1';
  details.addEventListener('toggle', () => {
    try {
      localStorage.setItem(key, details.open ? '1' : '0');
    } catch {
      // Not remembered.
    }
  });
  return details;
}
