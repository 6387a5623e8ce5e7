import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/** The benchmark pages: built apart from the app, never shipped with it. */
export default defineConfig({
  root: resolve(import.meta.dirname),
  publicDir: false,
  build: {
    outDir: resolve(import.meta.dirname, '../.cache/bench-dist'),
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        runtime: resolve(import.meta.dirname, 'runtime/index.html'),
        standins: resolve(import.meta.dirname, 'standins/index.html'),
      },
    },
  },
  worker: { format: 'es' },
});
