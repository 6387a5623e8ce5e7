/** `npx tsx modelhost/main.ts [--port 8090] [--host 127.0.0.1] [--corrupt <model>/<file>]…`: runs the model host. */
import { parseArgs } from 'node:util';
import { startModelHost } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8090' },
    host: { type: 'string', default: '127.0.0.1' },
    corrupt: { type: 'string', multiple: true, default: [] },
  },
});

const host = await startModelHost({ port: Number(values.port), host: values.host, corrupt: new Set(values.corrupt) });
console.log(`Model host: ${host.url}\nManifest:   ${host.manifestUrl}`);
if (host.corrupt.size > 0) console.log(`Corrupted:  ${[...host.corrupt].join(', ')}`);

const stop = (): void => void host.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
