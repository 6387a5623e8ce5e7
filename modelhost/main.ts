/**
 * `npx tsx modelhost/main.ts [--port 8090] [--host 127.0.0.1] [--corrupt <model>/<file>]… [--mirror DIR]`: runs the
 * model host; `--mirror` also serves a folder written by `npm run catalog -- mirror` at the hub's paths, and lists
 * the manifest entries `npm run catalog -- entries` wrote into it.
 */
import { parseArgs } from 'node:util';
import { readMirror, readMirrorEntries } from '../catalog/catalog.ts';
import { standinModels } from './models/index.ts';
import { startModelHost } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8090' },
    host: { type: 'string', default: '127.0.0.1' },
    corrupt: { type: 'string', multiple: true, default: [] },
    mirror: { type: 'string' },
  },
});

const host = await startModelHost({
  port: Number(values.port),
  host: values.host,
  corrupt: new Set(values.corrupt),
  standins: standinModels(),
  ...(values.mirror !== undefined
    ? { extraFiles: readMirror(values.mirror), extraEntries: (base: string) => readMirrorEntries(values.mirror ?? '', base) }
    : {}),
});
console.log(`Model host: ${host.url}\nManifest:   ${host.manifestUrl}`);
if (host.corrupt.size > 0) console.log(`Corrupted:  ${[...host.corrupt].join(', ')}`);

const stop = (): void => void host.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
