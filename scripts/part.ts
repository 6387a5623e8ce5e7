/**
 * Parts of the local network that are not operator commands, run as children of `npm start`:
 *
 *   tsx scripts/part.ts app    the contributor app (built `dist/`) with its `/spinneret.json`
 *   tsx scripts/part.ts demo   the demo requester: a job every 3 s from requester/corpus.json
 *
 * Settings come from the environment `npm start` gives them (SPINNERET_PORT, SPINNERET_HOST,
 * SPINNERET_MANIFEST_URL, SPINNERET_COORDINATOR_URL, SPINNERET_LOCAL_KEYS_FILE).
 */
import { readFileSync } from 'node:fs';
import { createLog } from '../operator/log.ts';
import { stopWithSupervisor } from '../operator/supervisor.ts';
import type { LocalKeys } from '../operator/wiring.ts';
import { RequesterClient } from '../requester/client.ts';
import { startDemoRequester } from '../requester/demo.ts';
import { startAppServer } from './serve.ts';

const part = process.argv[2];
const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const coordinatorUrl = env('SPINNERET_COORDINATOR_URL', 'http://127.0.0.1:8787');

if (part === 'app') {
  const log = createLog('app');
  const app = await startAppServer({
    distDir: 'dist',
    port: Number(env('SPINNERET_PORT', '5173')),
    host: env('SPINNERET_HOST', '127.0.0.1'),
    config: { manifestUrl: env('SPINNERET_MANIFEST_URL', 'http://127.0.0.1:8090/manifest.json'), coordinatorUrl },
  });
  log.info({ url: app.url }, 'app listening');
  const stop = (): void => void app.close().then(() => log.flush(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  stopWithSupervisor(stop);
} else if (part === 'demo') {
  const log = createLog('demo');
  const keys = JSON.parse(readFileSync(env('SPINNERET_LOCAL_KEYS_FILE', '.spinneret/local-keys.json'), 'utf8')) as LocalKeys;
  const stopDemo = startDemoRequester({
    client: new RequesterClient({ coordinatorUrl, apiKey: keys.demo.secret }),
    intervalMs: Number(env('SPINNERET_DEMO_INTERVAL_MS', '3000')),
    embedModel: 'tiny-embed',
    chatModel: 'tiny-decoder',
    log: (line) => log.info(line),
  });
  log.info({ coordinatorUrl, keyId: keys.demo.id }, 'demo requester started');
  const stop = (): void => {
    stopDemo();
    log.flush(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  stopWithSupervisor(stop);
} else {
  console.error('Usage: tsx scripts/part.ts app|demo');
  process.exit(2);
}
