import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';
import { pwaOptions } from './scripts/pwa.ts';
import { runtimeAssetsPlugin } from './scripts/runtime-assets.ts';

/** Cross-origin isolation lets onnxruntime-web use WASM threads (SharedArrayBuffer). */
export const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  publicDir: 'public',
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 2048,
    // Read by scripts/budget.ts and the service worker's precache filter (scripts/shell.ts).
    manifest: true,
    // The contributor page, and the owner's fleet page (kiosk and lab machines).
    rollupOptions: { input: { main: 'index.html', fleet: 'fleet.html' } },
  },
  plugins: [VitePWA(pwaOptions()), runtimeAssetsPlugin()],
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['onnxruntime-web', '@mlc-ai/web-llm'] },
  server: { headers: isolationHeaders },
  preview: { headers: isolationHeaders },
});
