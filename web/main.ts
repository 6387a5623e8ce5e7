import { startWorker } from './bridge.ts';
import { mountProbePage } from './probe-page.ts';
import { resolveConfig } from './config.ts';

const root = document.getElementById('app');
if (root !== null) {
  const config = await resolveConfig(location);
  void mountProbePage(root, startWorker(), config.manifestUrl);
}
