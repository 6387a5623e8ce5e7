/**
 * The app shell: what the first page load needs before any engine or wallet, read from the
 * build's `dist/.vite/manifest.json`. Each HTML entry's chunk plus everything it imports
 * statically, transitively, with their CSS, and the service worker's registration. Chunks reached only through `import()` (the
 * worker, onnxruntime-web, web-llm, TON Connect, @ton/core, Buffer) and `.wasm` files are
 * not part of it. The service worker precaches exactly this set; the size budget measures it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One record of Vite's build manifest (`build.manifest: true`). */
export interface ManifestChunk {
  file: string;
  isEntry?: boolean;
  imports?: string[];
  dynamicImports?: string[];
  css?: string[];
}

export type BuildManifest = Record<string, ManifestChunk>;

/**
 * Lazily imported chunks that every page load still fetches at start: the service worker's
 * registration (workbox-window, imported after `load`). Counted and precached with the shell.
 */
const LOADED_AT_START = /workbox-window/;

export function readBuildManifest(distDir: string): BuildManifest {
  return JSON.parse(readFileSync(join(distDir, '.vite', 'manifest.json'), 'utf8')) as BuildManifest;
}

/** The shell's files by entry (keyed by the HTML page), paths relative to `dist/`. */
export function shellFiles(manifest: BuildManifest): Map<string, { js: string[]; css: string[] }> {
  const out = new Map<string, { js: string[]; css: string[] }>();
  for (const [key, chunk] of Object.entries(manifest)) {
    if (chunk.isEntry !== true || !key.endsWith('.html')) continue;
    const js = new Set<string>();
    const css = new Set<string>();
    const visit = (name: string): void => {
      const c = manifest[name];
      if (c === undefined || js.has(c.file)) return;
      js.add(c.file);
      for (const file of c.css ?? []) css.add(file);
      for (const next of c.imports ?? []) visit(next);
      for (const next of c.dynamicImports ?? []) if (LOADED_AT_START.test(next)) visit(next);
    };
    visit(key);
    out.set(key, { js: [...js], css: [...css] });
  }
  return out;
}

/** Every shell file of every entry, for the service worker's precache filter. */
export function allShellFiles(manifest: BuildManifest): Set<string> {
  const all = new Set<string>();
  for (const { js, css } of shellFiles(manifest).values()) for (const file of [...js, ...css]) all.add(file);
  return all;
}
