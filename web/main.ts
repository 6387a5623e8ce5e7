import { proxy } from 'comlink';
import { SpinneretError } from '../protocol/errors.ts';
import { startWorker } from './bridge.ts';
import { kioskRequested, resolveConfig } from './config.ts';
import { mountDashboard } from './dashboard.ts';
import { h, replace, tr } from './dom.ts';
import { initLanguage } from './i18n/index.ts';
import { introParts, mountHeader } from './shell.ts';

await initLanguage();
const top = document.getElementById('top');
const header = top === null ? null : mountHeader(top, 'dashboard');
const root = document.getElementById('app');
if (root !== null && !navigator.onLine) {
  // Offline: the shell came from the service worker; the worker and its engines need the network.
  replace(
    root,
    h('div', { testid: 'intro', class: 'intro' }, ...introParts()),
    h('p', { testid: 'offline-shell' }, tr('app.offlineShell')),
  );
  root.dataset['ready'] = 'offline';
  addEventListener('online', () => location.reload(), { once: true });
} else if (root !== null && header !== null) {
  // The worker starts at once, the settings load beside it, and the first screen does not wait for either.
  const bridge = startWorker();
  const configured = resolveConfig(location);
  void configured.then((config) => (window.spinneret = { bridge, manifestUrl: config.manifestUrl, startWorker, proxy, SpinneretError }));
  if (kioskRequested(location.search)) {
    // Kiosk mode and its settings checker load only on kiosk machines.
    const { mountKiosk } = await import('./kiosk.ts');
    await mountKiosk(root, bridge, await configured);
  } else await mountDashboard(root, bridge, configured, header);
  root.dataset['ready'] = 'true';
}
