/**
 * The size budget: everything a visitor's browser loads from the app before the first click,
 * gzip, counted whole, must stay under {@link BUDGET_KB} KB (the goal is {@link GOAL_KB} KB).
 * Measured on the production build in `dist/`, for `index.html`:
 *
 * counted: the HTML; its CSS; its entry chunk and every chunk it imports, statically or with
 *   `import()`, transitively, unless the import waits for a click or for data (listed in
 *   {@link NOT_BEFORE_CLICK} with the reason); the largest non-English catalog (a Korean or
 *   Russian visitor loads one); the Web Worker the page starts on mount and everything it
 *   imports statically; the service worker, its Workbox runtime and every file it precaches
 *   on install; `runtime.json`. Text files are gzipped (level 9) one by one; PNGs count as they are.
 * not counted: what loads only after a click or a first job — TON Connect, @ton/core and Buffer
 *   (on Connect wallet), the worker's network code and HPKE (on Start), onnxruntime-web's and
 *   web-llm's code and WASM, the engines' model code (worker/engines/onnx/loaded.ts: tokenizers,
 *   the Jinja chat template engine, the hub-file reader; worker/engines/webllm/loaded.ts: cache
 *   seeding, web-llm's errors, the chat loop) (on the first job), the
 *   chart library (once there is work to chart), kiosk mode (kiosk machines only) — and source maps. Responses from the coordinator and the
 *   model host (the model manifest, prices, demand: a few KB of JSON) are measured in the
 *   browser by `npm run bench` (bench/first-click/), which also counts what the browser itself
 *   fetches (the web app manifest's icon).
 *
 * Exits 1 over budget, 2 when there is no build. Usage: `npx tsx scripts/budget.ts [distDir]` after `vite build`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readBuildManifest, type BuildManifest } from './shell.ts';

/** Lowered from 150 KB when the engines' model code left the worker's first load (132.3 → 93.0 KB). */
export const BUDGET_KB = 100;
export const GOAL_KB = 60;
const BUDGETED_ENTRY = 'index.html';

/** `import()`s that wait for a click or for data, by module id, with why. */
export const NOT_BEFORE_CLICK: [RegExp, string][] = [
  [/node_modules\/@tonconnect\//, 'on Connect wallet'],
  [/node_modules\/@ton\/core\//, 'on Connect wallet'],
  [/node_modules\/buffer\//, 'on Connect wallet'],
  [/web\/kiosk\.ts$/, 'kiosk machines only'],
  [/web\/chart-library\.ts$/, 'once there is work to chart'],
  [/web\/i18n\/(ko|ru)\.ts$/, 'when that language is chosen (the largest is counted apart)'],
];

export interface CountedFile {
  file: string;
  /** Bytes on disk. */
  bytes: number;
  /** Bytes gzipped (PNG: as is). */
  gzip: number;
  /** Why it is loaded before the first click. */
  why: string;
}

export interface FirstLoad {
  entry: string;
  files: CountedFile[];
  /** Sum of `gzip`, bytes. */
  total: number;
  /** What was left out and why. */
  skipped: { file: string; why: string }[];
}

function sizeOf(distDir: string, file: string, why: string): CountedFile | null {
  const path = join(distDir, file);
  if (!existsSync(path)) return null;
  const data = readFileSync(path);
  return { file, bytes: data.length, gzip: file.endsWith('.png') ? data.length : gzipSync(data, { level: 9 }).length, why };
}

/** The Web Worker a chunk starts (`new Worker(new URL('/assets/…'))`), by file. */
function workersStartedBy(distDir: string, file: string): string[] {
  const code = readFileSync(join(distDir, file), 'utf8');
  if (!code.includes('new Worker(')) return [];
  return [...code.matchAll(/new Worker\(new URL\(["'`]\/?(assets\/[^"'`]+\.js)["'`]/g)].map((m) => m[1] ?? '').filter(Boolean);
}

/** A built module's static imports (`import … from "./x.js"`, `import "./x.js"`), as dist paths. */
function staticImports(distDir: string, file: string): string[] {
  const code = readFileSync(join(distDir, file), 'utf8');
  const dir = file.slice(0, file.lastIndexOf('/') + 1);
  const found = new Set<string>();
  for (const m of code.matchAll(/(?:^|[;\s}])import\s*(?:[\w*${}\s,]+from\s*)?["'`](\.\/[^"'`]+\.js)["'`]/g))
    found.add(`${dir}${(m[1] ?? '').slice(2)}`);
  return [...found];
}

/** The service worker's precache list (`url:"…"` entries Workbox writes into `sw.js`), and its runtime. */
function serviceWorkerFiles(distDir: string): string[] {
  const path = join(distDir, 'sw.js');
  if (!existsSync(path)) return [];
  const code = readFileSync(path, 'utf8');
  const precached = [...code.matchAll(/url:"([^"]+)"/g)].map((m) => m[1] ?? '');
  const runtime = [...code.matchAll(/["'`]\.\/(workbox-[\w-]+?)(?:\.js)?["'`]/g)].map((m) => `${m[1] ?? ''}.js`);
  return ['sw.js', ...runtime, ...precached];
}

export function measureFirstLoad(distDir: string, manifest: BuildManifest = readBuildManifest(distDir), entry = BUDGETED_ENTRY): FirstLoad {
  const counted = new Map<string, CountedFile>();
  const skipped: FirstLoad['skipped'] = [];
  const add = (file: string, why: string): void => {
    if (counted.has(file)) return;
    const size = sizeOf(distDir, file, why);
    if (size !== null) counted.set(file, size);
  };
  add(entry, 'the page');
  const visited = new Set<string>();
  const workers: string[] = [];
  const visit = (name: string, why: string): void => {
    const chunk = manifest[name];
    if (chunk === undefined || visited.has(name)) return;
    visited.add(name);
    add(chunk.file, why);
    for (const css of chunk.css ?? []) add(css, 'styles');
    workers.push(...workersStartedBy(distDir, chunk.file));
    for (const next of chunk.imports ?? []) visit(next, why);
    for (const next of chunk.dynamicImports ?? []) {
      const later = NOT_BEFORE_CLICK.find(([re]) => re.test(next));
      if (later === undefined) visit(next, 'imported on mount');
      else skipped.push({ file: manifest[next]?.file ?? next, why: later[1] });
    }
  };
  visit(entry, 'the page’s code');
  // A Korean or Russian visitor also loads that language's words: the larger one counts.
  const catalogs = Object.entries(manifest)
    .filter(([id]) => /web\/i18n\/(ko|ru)\.ts$/.test(id))
    .map(([, chunk]) => sizeOf(distDir, chunk.file, 'the chosen language’s words (the larger of ko/ru)'))
    .filter((c): c is CountedFile => c !== null)
    .sort((a, b) => b.gzip - a.gzip);
  if (catalogs[0] !== undefined) counted.set(catalogs[0].file, catalogs[0]);
  const seenWorker = new Set<string>();
  const visitWorker = (file: string): void => {
    if (seenWorker.has(file)) return;
    seenWorker.add(file);
    add(file, 'the Web Worker, started on mount');
    for (const next of staticImports(distDir, file)) visitWorker(next);
  };
  for (const worker of workers) visitWorker(worker);
  for (const file of serviceWorkerFiles(distDir)) add(file, 'the service worker and its precache');
  add('runtime.json', 'read by the worker at start');
  const files = [...counted.values()];
  return { entry, files, total: files.reduce((sum, f) => sum + f.gzip, 0), skipped };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const distDir = process.argv[2] ?? 'dist';
  if (!existsSync(join(distDir, '.vite', 'manifest.json'))) {
    console.error(`No build manifest in ${distDir}/.vite/: run \`npx vite build\` first (vite.config.ts sets build.manifest).`);
    process.exit(2);
  }
  const kb = (n: number): string => (n / 1024).toFixed(1);
  const load = measureFirstLoad(distDir);
  console.log(
    `${load.entry}: ${kb(load.total)} KB gzip loaded before the first click, counted whole (budget ${BUDGET_KB} KB, goal ${GOAL_KB} KB)`,
  );
  for (const f of load.files.sort((a, b) => b.gzip - a.gzip))
    console.log(`  ${kb(f.gzip).padStart(6)} KB  ${f.file}  (${f.why}; ${kb(f.bytes)} KB raw)`);
  for (const s of load.skipped) console.log(`  not counted: ${s.file} (${s.why})`);
  if (load.total > BUDGET_KB * 1024) {
    console.error(
      `Over budget by ${kb(load.total - BUDGET_KB * 1024)} KB: load the newly added code on intent with import() or make it smaller.`,
    );
    process.exit(1);
  }
}
