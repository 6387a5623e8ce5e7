/**
 * The parts of the page that need neither the worker nor the network: the header with the
 * language switch, the update banner, the offline notice and the first-visit explanation.
 */
import { registerSW } from 'virtual:pwa-register';
import { h, replace, tr } from './dom.ts';
import { isLanguage, language, LANGUAGE_NAMES, LANGUAGES, onLanguage, setLanguage, t } from './i18n/index.ts';

const INTRO_SEEN = 'spinneret.introSeen';

export function mountHeader(header: HTMLElement): void {
  const select = h(
    'select',
    { id: 'language', testid: 'language' },
    ...LANGUAGES.map((l) => h('option', { value: l, lang: l }, LANGUAGE_NAMES[l])),
  );
  select.value = language();
  select.addEventListener('change', () => isLanguage(select.value) && setLanguage(select.value));
  onLanguage((lang) => ((select.value = lang), (document.title = t('app.documentTitle'))));
  document.title = t('app.documentTitle');
  const update = h('div', { testid: 'update-banner', class: 'banner', role: 'status', hidden: true });
  const offline = h('div', { testid: 'offline', class: 'banner offline', role: 'status', hidden: true });
  replace(
    header,
    h('div', { class: 'brand' }, h('img', { src: '/icon.svg', alt: '', width: 32, height: 32 }), h('h1', {}, tr('app.title'))),
    h('p', { class: 'tagline' }, tr('app.tagline')),
    h('p', { class: 'lang' }, h('label', { for: 'language' }, tr('app.language')), ' ', select),
    update,
    offline,
  );
  mountOfflineNotice(offline);
  registerUpdates(update);
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

/** What Spinneret does, what runs here, what this machine sees, what it earns: open on the first visit. */
export function mountIntro(): HTMLElement {
  let seen = false;
  try {
    seen = localStorage.getItem(INTRO_SEEN) === '1';
  } catch {
    // Storage denied: show it every time.
  }
  const details = h(
    'details',
    { testid: 'intro', class: 'intro' },
    h('summary', {}, tr('app.introTitle')),
    h('p', {}, tr('app.introWhat')),
    h('p', {}, tr('app.introRuns')),
    h('p', {}, h('strong', {}, tr('app.introSees'))),
    h('p', {}, tr('app.introEarns')),
  );
  details.open = !seen;
  details.addEventListener('toggle', () => {
    try {
      if (!details.open) localStorage.setItem(INTRO_SEEN, '1');
    } catch {
      // Not remembered; it opens again next time.
    }
  });
  return details;
}
