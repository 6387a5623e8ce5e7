/**
 * A build step that writes `runtime.json` next to the app: the engine runtime files a device
 * downloads before its first ONNX job (onnxruntime-web's WASM, tens of MB), so the worker can
 * count them in what Start will download and in the owner's download cap (worker/models/runtime-download.ts).
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Plugin } from 'vite';

/** What `runtime.json` holds. */
export interface RuntimeAssets {
  /** The onnx engine's runtime files: URL path and uncompressed size in bytes. */
  onnx: { url: string; bytes: number }[];
}

export function listRuntimeAssets(distDir: string): RuntimeAssets {
  const assets = join(distDir, 'assets');
  const files = readdirSync(assets).filter((name) => /^ort-wasm.*\.wasm$/.test(name));
  return { onnx: files.map((name) => ({ url: `/assets/${name}`, bytes: statSync(join(assets, name)).size })) };
}

/** Writes `runtime.json` into the build's output folder, wherever the build was told to write. */
export function runtimeAssetsPlugin(): Plugin {
  let outDir = 'dist';
  return {
    name: 'spinneret-runtime-assets',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    closeBundle() {
      writeFileSync(join(outDir, 'runtime.json'), JSON.stringify(listRuntimeAssets(outDir)));
    },
  };
}
