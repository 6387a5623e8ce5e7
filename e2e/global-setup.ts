/** Starts the model host and the built app once for all browser tests; their URLs go to the tests through the environment. */
import { startModelHost } from '../modelhost/server.ts';
import { startAppServer } from '../scripts/serve.ts';

export default async function globalSetup(): Promise<() => Promise<void>> {
  const host = await startModelHost({ port: 0 });
  const app = await startAppServer({ distDir: 'dist', port: 0, config: { manifestUrl: host.manifestUrl } });
  process.env['SPINNERET_APP_URL'] = app.url;
  process.env['SPINNERET_MODELHOST_URL'] = host.url;
  process.env['SPINNERET_MANIFEST_URL'] = host.manifestUrl;
  return async () => {
    await app.close();
    await host.close();
  };
}
