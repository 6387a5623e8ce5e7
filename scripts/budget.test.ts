import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { measureFirstLoad } from './budget.ts';

/** A small build: a page whose code starts a worker and imports TON Connect on a click. */
function fakeDist(): string {
  const dist = mkdtempSync(join(tmpdir(), 'budget-'));
  mkdirSync(join(dist, 'assets'));
  mkdirSync(join(dist, '.vite'));
  const files: Record<string, string> = {
    'index.html': '<!doctype html><script type="module" src="/assets/main-a.js"></script>',
    'assets/main-a.js': 'import"./shared-b.js";new Worker(new URL(`/assets/worker-c.js`,import.meta.url),{type:`module`});'.repeat(20),
    'assets/shared-b.js': 'export const x = 1;'.repeat(50),
    'assets/mount-d.js': 'export const mounted = true;'.repeat(30),
    'assets/tonconnect-e.js': 'export const ui = "big";'.repeat(4000),
    'assets/worker-c.js': 'import{a}from"./engine-f.js";import("./later-g.js");'.repeat(10),
    'assets/engine-f.js': 'export const a = 2;'.repeat(100),
    'assets/later-g.js': 'export const engines = "huge";'.repeat(5000),
    'assets/style-h.css': 'body{margin:0}'.repeat(40),
    'sw.js':
      'define(["./workbox-abc"],function(){precacheAndRoute([{url:"index.html",revision:"1"},{url:"icon-192.png",revision:null}])});',
    'workbox-abc.js': 'self.workbox = 1;'.repeat(100),
    'runtime.json': '{"onnx":[]}',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dist, name), text);
  writeFileSync(join(dist, 'icon-192.png'), Buffer.alloc(5000, 1));
  writeFileSync(
    join(dist, '.vite', 'manifest.json'),
    JSON.stringify({
      'index.html': {
        file: 'assets/main-a.js',
        isEntry: true,
        imports: ['_shared'],
        css: ['assets/style-h.css'],
        dynamicImports: ['web/mount.ts', 'node_modules/@tonconnect/ui/lib/index.mjs'],
      },
      _shared: { file: 'assets/shared-b.js' },
      'web/mount.ts': { file: 'assets/mount-d.js', isDynamicEntry: true },
      'node_modules/@tonconnect/ui/lib/index.mjs': { file: 'assets/tonconnect-e.js', isDynamicEntry: true },
    }),
  );
  return dist;
}

describe('the size budget', () => {
  it('counts everything loaded before the first click whole: page, imports made on mount, the worker and what it imports, the service worker and its precache', () => {
    const dist = fakeDist();
    const load = measureFirstLoad(dist);
    const counted = load.files.map((f) => f.file).sort();
    expect(counted).toEqual(
      [
        'index.html',
        'assets/main-a.js',
        'assets/shared-b.js',
        'assets/style-h.css',
        'assets/mount-d.js',
        'assets/worker-c.js',
        'assets/engine-f.js',
        'sw.js',
        'workbox-abc.js',
        'icon-192.png',
        'runtime.json',
      ].sort(),
    );
    // What waits for a click, and the worker's own lazy imports, are not.
    expect(load.skipped).toEqual([{ file: 'assets/tonconnect-e.js', why: 'on Connect wallet' }]);
    expect(counted).not.toContain('assets/later-g.js');
    // Gzip sizes summed, PNGs as they are.
    const main = load.files.find((f) => f.file === 'assets/main-a.js');
    expect(main?.gzip).toBe(
      gzipSync(
        Buffer.from('import"./shared-b.js";new Worker(new URL(`/assets/worker-c.js`,import.meta.url),{type:`module`});'.repeat(20)),
        { level: 9 },
      ).length,
    );
    expect(load.files.find((f) => f.file === 'icon-192.png')?.gzip).toBe(5000);
    expect(load.total).toBe(load.files.reduce((sum, f) => sum + f.gzip, 0));
  });
});
