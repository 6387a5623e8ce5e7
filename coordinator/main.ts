/**
 * The coordinator's command line:
 *
 *   npx tsx coordinator/main.ts --port 8787 [--host 127.0.0.1] [--data-dir DIR] [--create-key LABEL]
 *
 * `DATABASE_URL` selects PostgreSQL; otherwise PGlite, in `--data-dir` or in memory.
 * `--create-key` prints a new requester API key before serving. SIGINT/SIGTERM drain.
 */
import { parseArgs } from 'node:util';
import { createCoordinator } from './app.ts';
import { openStore } from './store/index.ts';

const DRAIN_MS = 30_000;

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8787' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' },
    'create-key': { type: 'string' },
  },
});

const store = await openStore({ dataDir: values['data-dir'] });
const coordinator = createCoordinator({ store });
if (values['create-key'] !== undefined) {
  const { id, secret } = await coordinator.createApiKey(values['create-key']);
  console.log(`API key ${id} ("${values['create-key']}"): ${secret}`);
}
const { url } = await coordinator.listen({ port: Number(values.port), host: values.host });
console.log(`Spinneret coordinator on ${url} (contributors: ${url.replace(/^http/, 'ws')}/v1/contributor)`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await coordinator.drain(DRAIN_MS);
  await store.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
