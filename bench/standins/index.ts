/**
 * `BENCH_ONLY=standins npm run bench`: the stand-ins shaped like published models, in Chromium,
 * through Spinneret's whole worker path against a raw onnxruntime-web session in the same page
 * (bench/standins/page.ts). At the real models' shapes on WASM — an all-MiniLM-L6-v2-shaped
 * encoder (fp32) and a Qwen2.5-0.5B-shaped decoder (q4 by default, `BENCH_STANDINS_VARIANT=q4f16`
 * for the fp16-cache build) — and, since SwiftShader runs WebGPU on the CPU far too slowly for
 * those shapes, the tiny MiniLM-shaped stand-in on WebGPU (`BENCH_STANDINS_WEBGPU=0` leaves it
 * out). Prints worker path ÷ raw (the target is ≤ 1.05).
 */
import { spawnSync } from 'node:child_process';
import { chromium } from '@playwright/test';
import { STANDIN_IDS, standinModels, type BuiltModel } from '../../modelhost/models/index.ts';
import { buildMiniLmStandin, MINILM_L6_SHAPE } from '../../modelhost/models/standin-minilm.ts';
import { buildQwenStandin, QWEN25_05B_SHAPE } from '../../modelhost/models/standin-qwen.ts';
import { startModelHost } from '../../modelhost/server.ts';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/chromium.ts';
import { startAppServer } from '../../scripts/serve.ts';
import type { StandinCase, StandinMeasurement } from './page.ts';

const iterations = Number(process.env['BENCH_ITERATIONS'] ?? 5);
const variant = (process.env['BENCH_STANDINS_VARIANT'] ?? 'q4') as 'q4' | 'q4f16';
const withWebGpu = process.env['BENCH_STANDINS_WEBGPU'] !== '0';
const PROMPT_TOKENS = 64;
const DECODE_TOKENS = 16;

function realShaped(): BuiltModel<unknown>[] {
  return [
    buildMiniLmStandin({ id: STANDIN_IDS.encoderReal, name: 'Stand-in: all-MiniLM-L6-v2-shaped encoder (bench)', shape: MINILM_L6_SHAPE }),
    buildQwenStandin({
      id: variant === 'q4' ? STANDIN_IDS.decoderQ4Real : STANDIN_IDS.decoderQ4f16Real,
      name: `Stand-in: Qwen2.5-0.5B-shaped decoder, ${variant} (bench)`,
      shape: QWEN25_05B_SHAPE,
      variant,
    }),
  ];
}

function cases(): StandinCase[] {
  const list: StandinCase[] = [
    { model: STANDIN_IDS.encoderReal, backend: 'wasm', batches: [1, 16] },
    {
      model: variant === 'q4' ? STANDIN_IDS.decoderQ4Real : STANDIN_IDS.decoderQ4f16Real,
      backend: 'wasm',
      generate: { promptTokens: PROMPT_TOKENS, decodeTokens: DECODE_TOKENS },
    },
  ];
  if (withWebGpu) {
    // The tiny q4 decoder keeps Qwen's 151,936-token vocabulary, whose first WebGPU steps take
    // minutes on SwiftShader: on WebGPU only the tiny encoder is timed (the runtime suite times
    // the tiny test decoder there).
    list.push({ model: STANDIN_IDS.encoder, backend: 'webgpu', batches: [1, 16] });
  }
  return list;
}

const ms = (x: number): string => `${x.toFixed(1)} ms`.padStart(11);
const rate = (count: number, x: number, unit: string): string => `${((count * 1000) / x).toFixed(1)} ${unit}/s`.padStart(15);

export function printStandins(results: StandinMeasurement[], header: string): void {
  console.log(header);
  console.log(
    `${'model'.padEnd(30)} ${'backend'.padEnd(7)} ${'work'.padEnd(20)} ${'raw'.padStart(11)} ${'engine'.padStart(11)} ${'worker path'.padStart(11)} ${'raw rate'.padStart(15)} ${'worker rate'.padStart(15)}  worker/raw`,
  );
  for (const r of results) {
    const unit = r.work.startsWith('embed') ? 'sent' : 'tok';
    console.log(
      `${r.model.padEnd(30)} ${r.backend.padEnd(7)} ${r.work.padEnd(20)} ${ms(r.rawMs)} ${ms(r.engineMs)} ${ms(r.workerMs)} ${rate(r.count, r.rawMs, unit)} ${rate(r.count, r.workerMs, unit)}  ${(r.workerMs / r.rawMs).toFixed(3)}`,
    );
  }
  const vram = new Map(results.map((r) => [r.model, r.vramBytes]));
  console.log(
    `GPU memory each needs (the manifest's estimate): ${[...vram].map(([m, b]) => `${m} ${(b / 1024 ** 3).toFixed(2)} GiB`).join(', ')}`,
  );
}

export async function runStandinsBench(): Promise<void> {
  const t0 = performance.now();
  const standins = [...(withWebGpu ? standinModels().filter((m) => m.id === STANDIN_IDS.encoder) : []), ...realShaped()];
  const mb = standins.reduce((sum, m) => sum + [...m.files.values()].reduce((s, f) => s + f.length, 0), 0) / 1e6;
  console.log(`\nStand-ins: ${standins.length} models (${mb.toFixed(0)} MB) built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const build = spawnSync('node_modules/.bin/vite', ['build', '--config', 'bench/vite.config.ts', '--logLevel', 'warn'], {
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error('building the benchmark page failed');
  const host = await startModelHost({ port: 0, standins });
  const app = await startAppServer({ distDir: '.cache/bench-dist', port: 0, config: { manifestUrl: host.manifestUrl } });
  const browser = await chromium.launch({ executablePath: ensureChromium(), args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') console.error('page console:', m.text());
      else if (m.text().startsWith('bench:')) console.log(m.text());
    });
    page.on('crash', () => console.error('the page crashed (out of memory?)'));
    await page.goto(`${app.url}/standins/index.html`);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready');
    const results: StandinMeasurement[] = await page.evaluate(
      (config) => {
        if (window.standinsBench === undefined) throw new Error('benchmark page not ready');
        return window.standinsBench(config);
      },
      { manifestUrl: host.manifestUrl, iterations, cases: cases() },
    );
    printStandins(
      results,
      `\nStand-ins in Chromium ${browser.version()}: raw onnxruntime-web session vs the whole worker path (median of ${iterations}; ` +
        `WASM at the real shapes, WebGPU on SwiftShader at the tiny shapes; raw = session.run + read-back with token ids made beforehand, ` +
        `decode = median(prefill + decode) − median(prefill))`,
    );
  } finally {
    await browser.close();
    await app.close();
    await host.close();
  }
}
