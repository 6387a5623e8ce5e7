/**
 * The installable app: the web app manifest and its icons, a service worker that activates,
 * controls the page after a reload and precaches exactly the app shell (no engines, no
 * weights), an offline reload that shows the shell and says what needs the network, and the
 * "new version — reload" prompt when the service worker changes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Page } from '@playwright/test';
import { allShellFiles, readBuildManifest } from '../scripts/shell.ts';
import { appUrl, expect, test } from './fixtures.ts';

interface WebManifest {
  name: string;
  short_name: string;
  start_url: string;
  display: string;
  icons: { src: string; sizes: string; type: string; purpose?: string }[];
}

/** The state of the registration's active service worker, once there is one (`ready` resolves while it may still be activating). */
const swState = (page: Page): Promise<string | undefined> => page.evaluate(async () => (await navigator.serviceWorker.ready).active?.state);

test('the manifest, the service worker, the precached shell and the offline page', async ({ app, context }) => {
  const href = await app.locator('link[rel="manifest"]').getAttribute('href');
  expect(href).not.toBeNull();
  const response = await app.request.get(new URL(href ?? '', appUrl()).href);
  expect(response.ok()).toBe(true);
  const manifest = (await response.json()) as WebManifest;
  expect(manifest).toMatchObject({ short_name: 'Spinneret', start_url: '/', display: 'standalone' });
  const sizes = manifest.icons.map((i) => `${i.sizes}${i.purpose === 'maskable' ? ' maskable' : ''}`);
  expect(sizes).toEqual(expect.arrayContaining(['192x192', '512x512', '512x512 maskable']));
  for (const icon of manifest.icons.filter((i) => i.type === 'image/png')) {
    const png = await app.request.get(new URL(icon.src, appUrl()).href);
    expect(png.ok(), icon.src).toBe(true);
    // PNG signature, then the IHDR width: the file is the size the manifest says.
    const body = await png.body();
    expect(body.subarray(1, 4).toString()).toBe('PNG');
    expect(`${body.readUInt32BE(16)}x${body.readUInt32BE(20)}`).toBe(icon.sizes);
  }

  await expect.poll(() => swState(app)).toBe('activated');
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  expect(await app.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);

  // The precache holds the shell, computed here from the build, and nothing else under assets/.
  const cached = await app.evaluate(async () => {
    const paths: string[] = [];
    for (const name of await caches.keys())
      for (const request of await (await caches.open(name)).keys()) paths.push(new URL(request.url).pathname);
    return paths;
  });
  const shell = [...allShellFiles(readBuildManifest('dist'))].map((f) => `/${f}`).sort();
  expect(cached.filter((p) => p.startsWith('/assets/')).sort()).toEqual(shell);
  expect(cached).toContain('/index.html');
  expect(cached.filter((p) => /\.(wasm|onnx|bin|map)$|ort|web-llm/.test(p))).toEqual([]);

  await context.setOffline(true);
  await app.reload();
  await expect(app.locator('#app[data-ready="offline"]')).toBeAttached();
  await expect(app.getByTestId('offline')).toBeVisible();
  await expect(app.getByTestId('offline')).toContainText('downloading models from the model host');
  await expect(app.getByTestId('offline')).toContainText('contributing');
  await expect(app.getByTestId('offline-shell')).toContainText('when the connection is back');
  await expect(app.getByTestId('intro')).toBeVisible();
  // Back online, the page reloads into the dashboard by itself.
  await context.setOffline(false);
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
});

const restoreAfter: (() => void)[] = [];
test.afterEach(() => {
  for (const restore of restoreAfter.splice(0)) restore();
});

test('a changed service worker shows the "new version — reload" banner, and reloading takes the new version', async ({ app }) => {
  await expect.poll(() => swState(app)).toBe('activated');
  // Controlled by the current version first, as a returning visitor is.
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  // The app server reads dist/ on every request: a service worker that differs by one comment is a new version.
  const swPath = 'dist/sw.js';
  const original = readFileSync(swPath, 'utf8');
  writeFileSync(swPath, `${original}\n// next version\n`);
  // The next version stays on disk until the test ends: restored earlier, the original would be a
  // newer version again for the reload's own update check, and wait behind the one just taken.
  restoreAfter.push(() => writeFileSync(swPath, original));
  await app.evaluate(async () => (await navigator.serviceWorker.ready).update());
  const banner = app.getByTestId('update-banner');
  await expect(banner).toBeVisible({ timeout: 30_000 });
  await expect(banner).toContainText('A new version of Spinneret is ready.');
  expect(await app.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.waiting !== null)).toBe(true);
  await app.evaluate(() => ((window as unknown as { beforeUpdate: boolean }).beforeUpdate = true));
  const reloaded = app.waitForEvent('load');
  await app.getByTestId('update-reload').click();
  // The page reloads under the new version: nothing waits any more.
  await reloaded;
  expect(await app.evaluate(() => (window as unknown as { beforeUpdate?: boolean }).beforeUpdate ?? false)).toBe(false);
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  expect(await app.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.waiting ?? null)).toBeNull();
  expect(await app.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
  await expect(app.getByTestId('update-banner')).toBeHidden();
});
