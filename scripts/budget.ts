/**
 * The size budget: the JavaScript a visitor loads before any engine or the wallet must stay
 * under {@link BUDGET_KB} KB gzip. Measured on the production build in `dist/`:
 *
 * counted: for `index.html`, its entry chunk and every chunk it imports statically, transitively
 *   (Vite's build manifest `imports`), plus the service worker's registration (workbox-window,
 *   imported right after start), each gzipped on its own (level 9) and summed;
 * not counted: chunks reached only through `import()` — the Web Worker and its engines
 *   (onnxruntime-web, web-llm), TON Connect, @ton/core, Buffer — `.wasm` files, CSS (reported
 *   beside), source maps, and the service worker (it runs off the page).
 *
 * Other HTML entries are reported too. Exits 1 over budget, 2 when there is no build.
 * Usage: `npx tsx scripts/budget.ts [distDir]` after `vite build`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readBuildManifest, shellFiles } from './shell.ts';

export const BUDGET_KB = 150;
const BUDGETED_ENTRY = 'index.html';

export interface EntrySize {
  entry: string;
  files: { file: string; bytes: number; gzip: number }[];
  /** Sum of the gzipped JavaScript files, bytes. */
  jsGzip: number;
  cssGzip: number;
}

export function measure(distDir: string): EntrySize[] {
  const gz = (file: string): { file: string; bytes: number; gzip: number } => {
    const data = readFileSync(join(distDir, file));
    return { file, bytes: data.length, gzip: gzipSync(data, { level: 9 }).length };
  };
  return [...shellFiles(readBuildManifest(distDir))].map(([entry, { js, css }]) => {
    const files = js.map(gz);
    return {
      entry,
      files,
      jsGzip: files.reduce((a, f) => a + f.gzip, 0),
      cssGzip: css.map(gz).reduce((a, f) => a + f.gzip, 0),
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const distDir = process.argv[2] ?? 'dist';
  if (!existsSync(join(distDir, '.vite', 'manifest.json'))) {
    console.error(`No build manifest in ${distDir}/.vite/: run \`npx vite build\` first (vite.config.ts sets build.manifest).`);
    process.exit(2);
  }
  const kb = (n: number): string => (n / 1024).toFixed(1);
  let over = false;
  for (const e of measure(distDir)) {
    const budgeted = e.entry === BUDGETED_ENTRY;
    console.log(
      `${e.entry}: ${kb(e.jsGzip)} KB gzip JavaScript before any engine or wallet${budgeted ? ` (budget ${BUDGET_KB} KB)` : ''}, CSS ${kb(e.cssGzip)} KB gzip`,
    );
    for (const f of e.files) console.log(`  ${f.file}  ${kb(f.bytes)} KB, ${kb(f.gzip)} KB gzip`);
    if (budgeted && e.jsGzip > BUDGET_KB * 1024) {
      console.error(`Over budget by ${kb(e.jsGzip - BUDGET_KB * 1024)} KB: load the newly added code with import() or make it smaller.`);
      over = true;
    }
  }
  process.exit(over ? 1 : 0);
}
