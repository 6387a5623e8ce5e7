import { defineConfig } from 'vite';

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
  },
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['onnxruntime-web', '@mlc-ai/web-llm'] },
  server: { headers: isolationHeaders },
  preview: { headers: isolationHeaders },
});
