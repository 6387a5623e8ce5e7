/**
 * The installable app: the web app manifest, and a Workbox service worker that precaches the
 * app shell only (see `shell.ts`). Model weights, onnxruntime-web and web-llm (their chunks
 * and multi-MB `.wasm`), the wallet chunks and source maps are never precached: they load from
 * the network when used, and the offline page says so.
 */
import { existsSync } from 'node:fs';
import type { VitePWAOptions } from 'vite-plugin-pwa';
import { allShellFiles, readBuildManifest } from './shell.ts';

/** Largest file the service worker may precache, bytes: the shell is tens of KB; engines are MBs. */
export const PRECACHE_MAX_BYTES = 512 * 1024;

export function pwaOptions(outDir = 'dist'): Partial<VitePWAOptions> {
  return {
    registerType: 'prompt',
    // Files over the limit (the engines) are left out with a note in the build log, not an error.
    showMaximumFileSizeToCacheInBytesWarning: true,
    injectRegister: null,
    // The glob below finds the icons; listing them again would precache them twice.
    includeManifestIcons: false,
    manifest: {
      name: 'Spinneret — contribute your GPU',
      short_name: 'Spinneret',
      description: 'Run AI jobs on your GPU from a browser tab and earn TON.',
      start_url: '/',
      scope: '/',
      display: 'standalone',
      background_color: '#0f172a',
      theme_color: '#0f172a',
      icons: [
        { src: '/icon-192.png', sizes: '192x192', type: 'image/png' },
        { src: '/icon-512.png', sizes: '512x512', type: 'image/png' },
        { src: '/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        { src: '/icon.svg', sizes: 'any', type: 'image/svg+xml' },
      ],
    },
    workbox: {
      globPatterns: ['**/*.{html,js,css,svg,png,webmanifest}'],
      // The large icons are for installing, which fetches them itself: not precached on every first visit.
      globIgnores: [
        '**/*.map',
        '**/*.wasm',
        '**/ort*',
        '**/node_modules/**',
        'manifest.webmanifest',
        'icon-512.png',
        'icon-maskable-512.png',
      ],
      maximumFileSizeToCacheInBytes: PRECACHE_MAX_BYTES,
      navigateFallback: '/index.html',
      // The pages read their settings from the address (`?coordinator=`, `?wallets=`, kiosk links):
      // fleet.html with a query is still fleet.html, not the fallback.
      ignoreURLParametersMatching: [/.*/],
      // `/spinneret.json` and the coordinator's routes are live data, never served from cache.
      navigateFallbackDenylist: [/^\/spinneret\.json$/, /^\/v1\//],
      cleanupOutdatedCaches: true,
      manifestTransforms: [
        (entries) => {
          // Under assets/, keep only the shell chunks; lazily loaded ones stay on the network.
          const manifestPath = `${outDir}/.vite/manifest.json`;
          if (!existsSync(manifestPath)) return { manifest: entries, warnings: ['no build manifest: precaching every matched file'] };
          const shell = allShellFiles(readBuildManifest(outDir));
          return { manifest: entries.filter((e) => !e.url.startsWith('assets/') || shell.has(e.url)), warnings: [] };
        },
      ],
    },
  };
}
