/**
 * `npm start`: builds the app and runs Spinneret locally — the model host (serving the
 * project's own test models the way a model hub serves real ones) and the app — then prints
 * the URL to open. Ports: SPINNERET_PORT (default 5173), SPINNERET_MODELHOST_PORT (8090).
 */
import { spawnSync } from 'node:child_process';
import { startModelHost } from '../modelhost/server.ts';
import { startAppServer } from './serve.ts';

const host = process.env['SPINNERET_HOST'] ?? '127.0.0.1';
const appPort = Number(process.env['SPINNERET_PORT'] ?? 5173);
const modelPort = Number(process.env['SPINNERET_MODELHOST_PORT'] ?? 8090);

console.log('Building the app…');
const build = spawnSync('node_modules/.bin/vite', ['build', '--logLevel', 'warn'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('The build failed; see above.');
  process.exit(1);
}

const models = await startModelHost({ port: modelPort, host });
const app = await startAppServer({ distDir: 'dist', port: appPort, host, config: { manifestUrl: models.manifestUrl } });

console.log(`
Spinneret is running.
  Open:        ${app.url}/
  Model host:  ${models.manifestUrl}

WebGPU needs a recent Chrome or Edge (on Linux start it with --enable-unsafe-webgpu).
Press Ctrl+C to stop.`);

const stop = async (): Promise<void> => {
  await app.close();
  await models.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
