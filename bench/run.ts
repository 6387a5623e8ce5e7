/**
 * `npm run bench`: reproducible benchmarks, each printed as a ratio against a baseline
 * measured in the same run. Speed is never asserted in tests; it is measured here.
 */
import { spawnSync } from 'node:child_process';
import { chromium } from '@playwright/test';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceGreedy } from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import { startModelHost } from '../modelhost/server.ts';
import { CHROMIUM_ARGS, ensureChromium } from '../scripts/chromium.ts';
import { startAppServer } from '../scripts/serve.ts';
import { runDispatchBench } from './dispatch/index.ts';
import type { Measurement } from './runtime/page.ts';

const iterations = Number(process.env['BENCH_ITERATIONS'] ?? 15);

function fmt(ms: number): string {
  return `${ms.toFixed(2)} ms`.padStart(11);
}

async function runtimeBench(): Promise<void> {
  const build = spawnSync('node_modules/.bin/vite', ['build', '--config', 'bench/vite.config.ts', '--logLevel', 'warn'], {
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error('building the benchmark page failed');
  const host = await startModelHost({ port: 0 });
  const app = await startAppServer({ distDir: '.cache/bench-dist', port: 0, config: { manifestUrl: host.manifestUrl } });
  const browser = await chromium.launch({ executablePath: ensureChromium(), args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(`${app.url}/runtime/index.html`);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready');
    const spec = testModels().decoder.entry.onnx.decoder;
    if (spec === undefined) throw new Error('no decoder spec');
    const prompt = decoderTokenizer().encode(DECODER_TEST_PROMPTS[4]).ids;
    // Generate exactly as many tokens as greedy makes before its end token, so both loops do the same work.
    const maxTokens = Math.min(24, referenceGreedy(prompt, 24, spec.eosTokenIds).tokens.length);
    const texts = Array.from({ length: 16 }, (_, i) => `sentence ${i}: the quick brown fox jumps over the lazy dog while gpus run models`);
    const results: Measurement[] = await page.evaluate(
      (config) => {
        if (window.runtimeBench === undefined) throw new Error('benchmark page not ready');
        return window.runtimeBench(config);
      },
      { manifestUrl: host.manifestUrl, iterations, texts, prompt, maxTokens },
    );
    console.log(
      `\nRuntime: raw onnxruntime-web session vs the whole worker path (median of ${iterations}, Chromium ${browser.version()}, SwiftShader)`,
    );
    console.log(
      `${'work'.padEnd(42)} ${'backend'.padEnd(8)} ${'raw'.padStart(11)} ${'engine'.padStart(11)} ${'worker path'.padStart(11)}  overhead`,
    );
    for (const r of results) {
      if (r.rawMs === 0) {
        console.log(`${r.name.padEnd(42)} ${r.backend.padEnd(8)} ${''.padStart(11)} ${''.padStart(11)} ${fmt(r.workerMs)}`);
        continue;
      }
      const overhead = (r.workerMs / r.rawMs - 1) * 100;
      console.log(
        `${r.name.padEnd(42)} ${r.backend.padEnd(8)} ${fmt(r.rawMs)} ${fmt(r.engineMs)} ${fmt(r.workerMs)}  ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)}% (ratio ${(r.workerMs / r.rawMs).toFixed(3)})`,
      );
    }
    console.log('\nWebGPU vs WASM (raw sessions; SwiftShader runs WebGPU on the CPU, so this says nothing about real GPUs)');
    for (const name of new Set(results.map((r) => r.name))) {
      const gpu = results.find((r) => r.name === name && r.backend === 'webgpu');
      const cpu = results.find((r) => r.name === name && r.backend === 'wasm');
      if (gpu && cpu)
        console.log(
          `${name.padEnd(42)} webgpu ${fmt(gpu.rawMs)}  wasm ${fmt(cpu.rawMs)}  webgpu/wasm time ratio ${(gpu.rawMs / cpu.rawMs).toFixed(2)}`,
        );
    }
  } finally {
    await browser.close();
    await app.close();
    await host.close();
  }
}

// BENCH_ONLY=runtime|dispatch|background|first-click|earnings|trust|models|standins|connections|replicas runs one of them; by default all, the browser runtime first.
// The background suite (a hidden tab against a visible one) takes a few minutes; BENCH_BACKGROUND_LONG=1 runs it past the 5-minute mark.
// first-click and earnings use the app's production build in dist/ (`npx vite build` first); earnings works for 5 minutes.
// connections holds 10,000 contributor sockets on one coordinator (BENCH_CONNECTIONS, BENCH_CONNECTIONS_BASE, BENCH_HOLD_S),
// then offers jobs over them at a fixed rate (BENCH_LOAD_RATE jobs/s, default 200, 0 = off; BENCH_LOAD_S, default 10; BENCH_LOAD_SOCKETS).
// replicas: tiny-embed jobs through another replica (embed), then the channel load over 1, 2 and 3 replica processes and a
// replica killed mid-load (load; BENCH_REPLICAS_COUNTS, _CONTRIBUTORS, _LANES, _WINDOW_MS, _KILL…: bench/replicas/load.ts).
const SUITES = ['runtime', 'dispatch', 'background', 'first-click', 'earnings', 'trust', 'models', 'standins', 'connections', 'replicas'];
const only = process.env['BENCH_ONLY'] ?? '';
if (only !== '' && !SUITES.includes(only)) throw new Error(`BENCH_ONLY must be one of ${SUITES.join(', ')}, got ${only}`);
if (only === '' || only === 'runtime') await runtimeBench();
if (only === '' || only === 'dispatch') await runDispatchBench();
if (only === '' || only === 'trust') {
  const { runTrustBench } = await import('./trust/index.ts');
  runTrustBench();
}
if (only === '' || only === 'background') {
  const { runBackgroundBench } = await import('./background/index.ts');
  await runBackgroundBench();
}
if (only === '' || only === 'first-click' || only === 'earnings') {
  const build = spawnSync('node_modules/.bin/vite', ['build', '--logLevel', 'warn'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('building the app failed');
  const { runEarningsBench, runFirstClickBench } = await import('./first-screen/index.ts');
  if (only === '' || only === 'first-click') await runFirstClickBench();
  if (only === '' || only === 'earnings') await runEarningsBench();
}
if (only === '' || only === 'connections') {
  const { runConnectionsBench } = await import('./connections/index.ts');
  await runConnectionsBench();
}
if (only === '' || only === 'models') {
  const { runModelsBench } = await import('./models/index.ts');
  await runModelsBench();
}
if (only === '' || only === 'standins') {
  const { runStandinsBench } = await import('./standins/index.ts');
  await runStandinsBench();
}
if (only === '' || only === 'replicas') {
  const { runReplicasBench } = await import('./replicas/index.ts');
  await runReplicasBench();
}
