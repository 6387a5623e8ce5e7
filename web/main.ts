import { proxy } from 'comlink';
import { SpinneretError } from '../protocol/errors.ts';
import { startWorker } from './bridge.ts';
import { resolveConfig } from './config.ts';
import { h, replace, tr } from './dom.ts';
import { initLanguage } from './i18n/index.ts';
import { mountProbePage } from './probe-page.ts';
import { mountKiosk } from './kiosk.ts';
import { kioskRequested } from './kiosk-config.ts';
import { mountHeader, mountIntro } from './shell.ts';

initLanguage();
const header = document.getElementById('top');
if (header !== null) mountHeader(header);
const root = document.getElementById('app');
if (root !== null && !navigator.onLine) {
  // Offline: the shell came from the service worker; the worker and its engines need the network.
  replace(root, mountIntro(), h('p', { testid: 'offline-shell' }, tr('app.offlineShell')));
  root.dataset['ready'] = 'offline';
  addEventListener('online', () => location.reload(), { once: true });
} else if (root !== null) {
  const config = await resolveConfig(location);
  const bridge = startWorker();
  window.spinneret = { bridge, manifestUrl: config.manifestUrl, startWorker, proxy, SpinneretError };
  if (kioskRequested(location.search)) await mountKiosk(root, bridge, config);
  else await mountProbePage(root, bridge, config);
  root.dataset['ready'] = 'true';
}
