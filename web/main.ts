import { proxy } from 'comlink';
import { SpinneretError } from '../protocol/errors.ts';
import { startWorker } from './bridge.ts';
import { resolveConfig } from './config.ts';
import { mountProbePage } from './probe-page.ts';

const root = document.getElementById('app');
if (root !== null) {
  const config = await resolveConfig(location);
  const bridge = startWorker();
  window.spinneret = { bridge, manifestUrl: config.manifestUrl, startWorker, proxy, SpinneretError };
  await mountProbePage(root, bridge, config);
  root.dataset['ready'] = 'true';
}
