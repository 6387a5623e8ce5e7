/**
 * The contributor runtime in real Chromium with real WebGPU (SwiftShader): probe, the three
 * test models against float64 references computed here in Node, and device-loss recovery.
 */
import {
  DECODER_TEST_PROMPTS,
  decoderTokenizer,
  referenceChatPrompt,
  referenceEmbed,
  referenceGreedy,
  referenceQ4,
} from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import { expect, runJob, test, type JobAnswer } from './fixtures.ts';

/** Largest |a − b| over all entries. */
function maxAbsDiff(a: number[][], b: number[][]): number {
  let max = 0;
  a.forEach((row, i) => row.forEach((x, j) => (max = Math.max(max, Math.abs(x - (b[i]?.[j] ?? NaN))))));
  return Number.isNaN(max) ? Infinity : max;
}

function ok(answer: JobAnswer) {
  if (!answer.ok) throw new Error(`job failed: ${answer.error.code} ${answer.error.message}`);
  return answer.outcome;
}

/** float32 GPU math against a float64 reference: the embedding model is small, so errors stay near 1e-6. */
const EMBED_TOLERANCE = 1e-4;
const TEXTS = ['The quick brown fox jumps over the lazy dog.', 'hello world', 'GPUs run models in the browser while the tab is open'];

test('the probe finds a WebGPU adapter and the benchmark checks its kernels', async ({ app, consoleErrors }) => {
  await expect(app.getByTestId('gpu-adapter')).toContainText('swiftshader');
  await expect(app.getByTestId('gpu-fallback')).toContainText('yes');
  await expect(app.getByTestId('gpu-f16')).toContainText('no');
  await app.getByTestId('bench').click();
  await expect(app.getByTestId('bench-gflops')).toContainText('GFLOP/s', { timeout: 120_000 });
  const gflops = Number((await app.getByTestId('bench-gflops').textContent())?.split(' ')[0]);
  const gbps = Number((await app.getByTestId('bench-gbps').textContent())?.split(' ')[0]);
  expect(gflops).toBeGreaterThan(0);
  expect(gbps).toBeGreaterThan(0);
  expect(consoleErrors).toEqual([]);
});

test('embeddings on WebGPU match the float64 reference and the WASM backend', async ({ app }) => {
  const job = { kind: 'embed' as const, model: 'tiny-embed', inputs: TEXTS };
  const gpu = ok(await runJob(app, job));
  expect(gpu.backend).toBe('webgpu');
  if (gpu.result.kind !== 'embed') throw new Error('not an embedding');
  const reference = referenceEmbed(TEXTS);
  expect(maxAbsDiff(gpu.result.embeddings, reference)).toBeLessThan(EMBED_TOLERANCE);
  for (const vector of gpu.result.embeddings) expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
  expect(gpu.result.usage.promptTokens).toBeGreaterThan(TEXTS.length);

  const cpu = ok(await runJob(app, job, { worker: 'wasm' }));
  expect(cpu.backend).toBe('wasm');
  if (cpu.result.kind !== 'embed') throw new Error('not an embedding');
  expect(maxAbsDiff(gpu.result.embeddings, cpu.result.embeddings)).toBeLessThan(EMBED_TOLERANCE);
});

test('the 4-bit MatMulNBits model runs on WebGPU and matches dequantize-and-multiply', async ({ app }) => {
  const spec = testModels().q4.entry.onnx.inputs?.[0];
  if (spec === undefined) throw new Error('the q4 model declares no input');
  const k = Number(spec.shape[1]);
  const x = [Array.from({ length: k }, (_, i) => Math.sin(i * 0.37)), Array.from({ length: k }, (_, i) => Math.cos(i * 0.11) - 0.5)];
  const answer = ok(
    await runJob(app, { kind: 'infer', model: 'tiny-q4', inputs: { [spec.name]: { type: 'float32', dims: [2, k], data: x.flat() } } }),
  );
  expect(answer.backend).toBe('webgpu');
  if (answer.result.kind !== 'infer') throw new Error('not an infer result');
  const [output] = Object.values(answer.result.outputs);
  if (output === undefined) throw new Error('no output');
  const n = output.dims[1] ?? 0;
  const rows = [output.data.slice(0, n), output.data.slice(n, 2 * n)];
  expect(maxAbsDiff(rows, referenceQ4(x))).toBeLessThan(1e-4);
});

test('greedy generation on the tiny decoder gives the reference tokens, streamed', async ({ app }) => {
  const decoder = testModels().decoder.entry.onnx.decoder;
  if (decoder === undefined) throw new Error('no decoder spec');
  const prompt = decoderTokenizer().encode(DECODER_TEST_PROMPTS[4]).ids;
  const expected = referenceGreedy(prompt, 24, decoder.eosTokenIds);
  expect(expected.tokens.length).toBeGreaterThanOrEqual(8);
  // Exact token equality is fair only away from ties: float32 differs from float64 by ~1e-5.
  expect(expected.minMargin).toBeGreaterThan(1e-2);

  const answer = await runJob(app, {
    kind: 'generate',
    model: 'tiny-decoder',
    prompt,
    maxTokens: 24,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  });
  const outcome = ok(answer);
  expect(outcome.backend).toBe('webgpu');
  if (outcome.result.kind !== 'generate') throw new Error('not a generation');
  expect(outcome.result.tokens).toEqual(expected.tokens);
  expect(outcome.result.finishReason).toBe(expected.finishReason);
  if (!answer.ok) throw new Error('unreachable');
  expect(answer.chunks).toHaveLength(expected.tokens.length);
  expect(answer.chunks.join('')).toBe(outcome.result.text);

  // The same on the CPU backend: the loop is the same code, the numerics another build.
  const cpu = ok(
    await runJob(
      app,
      { kind: 'generate', model: 'tiny-decoder', prompt, maxTokens: 24, sampling: { temperature: 0, topP: 1, seed: 0 } },
      { worker: 'wasm' },
    ),
  );
  expect(cpu.result.kind === 'generate' && cpu.result.tokens).toEqual(expected.tokens);
});

test('chat on the tiny decoder streams the reference answer for the templated prompt', async ({ app }) => {
  const decoder = testModels().decoder.entry.onnx.decoder;
  if (decoder === undefined) throw new Error('no decoder spec');
  const tokenizer = decoderTokenizer();
  const text = referenceChatPrompt([{ role: 'user', content: 'the dog ran' }]);
  const expected = referenceGreedy(tokenizer.encode(text).ids, 16, decoder.eosTokenIds);
  expect(expected.minMargin).toBeGreaterThan(1e-2);
  const answer = await runJob(app, {
    kind: 'chat',
    model: 'tiny-decoder',
    messages: [{ role: 'user', content: 'the dog ran' }],
    maxTokens: 16,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  });
  const outcome = ok(answer);
  if (outcome.result.kind !== 'chat' || !answer.ok) throw new Error('not a chat result');
  expect(outcome.result.text).toBe(tokenizer.decode(expected.tokens, { skip_special_tokens: true }));
  expect(answer.chunks.join('')).toBe(outcome.result.text);
});

test('a destroyed GPU device is recovered and work resumes', async ({ app }) => {
  const job = { kind: 'embed' as const, model: 'tiny-embed', inputs: TEXTS };
  const before = ok(await runJob(app, job));
  expect(before.deviceGeneration).toBe(1);
  // The page's "simulate GPU loss" button exists only in development builds: the test asks the worker, as the button does.
  await app.evaluate(() => window.spinneret?.bridge.api.loseDevice());
  const after = ok(await runJob(app, job));
  expect(after.backend).toBe('webgpu');
  expect(after.deviceGeneration).toBe(2);
  if (after.result.kind !== 'embed') throw new Error('not an embedding');
  expect(maxAbsDiff(after.result.embeddings, referenceEmbed(TEXTS))).toBeLessThan(EMBED_TOLERANCE);
  await expect(app.getByTestId('device-status')).toContainText('generation 2, 1 loss(es) recovered');
});

test('bad input gets typed errors that say what to do, and the worker keeps working', async ({ app }) => {
  const unknown = await runJob(app, { kind: 'embed', model: 'no-such-model', inputs: ['x'] });
  expect(unknown).toMatchObject({ ok: false, error: { code: 'UNKNOWN_MODEL', name: 'UnknownModelError', typed: true } });
  expect(!unknown.ok && unknown.error.message).toContain('Choose one of: ');

  const shape = await runJob(app, { kind: 'infer', model: 'tiny-q4', inputs: { x: { type: 'float32', dims: [1, 3], data: [1, 2, 3] } } });
  expect(shape).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT', typed: true } });
  expect(!shape.ok && shape.error.message).toMatch(/has shape \[1, 3\].*Reshape/);

  const long = await runJob(app, { kind: 'embed', model: 'tiny-embed', inputs: ['word '.repeat(2000)] });
  expect(long).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  expect(!long.ok && long.error.message).toMatch(/Split the text/);

  const malformed = await runJob(app, { kind: 'embed', model: 'tiny-embed' } as never);
  expect(malformed).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });

  const wrongKind = await runJob(app, { kind: 'embed', model: 'tiny-decoder', inputs: ['x'] });
  expect(wrongKind).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });

  expect(ok(await runJob(app, { kind: 'embed', model: 'tiny-embed', inputs: ['still alive'] })).result.kind).toBe('embed');
});

test('the page loads a model with progress and runs it from its buttons', async ({ app }) => {
  await app.getByTestId('load-tiny-embed').click();
  await expect(app.getByTestId('state-tiny-embed')).toContainText('loaded on webgpu');
  await app.getByTestId('run-model').selectOption('tiny-decoder');
  await app.getByTestId('run-input').fill('the cat');
  await app.getByTestId('run-button').click();
  await expect(app.getByTestId('run-meta')).toContainText('webgpu');
  await expect(app.getByTestId('run-output')).not.toBeEmpty();
  await expect(app.getByTestId('error')).toBeEmpty();
});

test('verified model files stay cached across reloads and can be evicted', async ({ app }) => {
  await app.getByTestId('load-tiny-embed').click();
  await expect(app.getByTestId('state-tiny-embed')).toContainText('loaded on webgpu');
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(app.getByTestId('state-tiny-embed')).toHaveText('cached');
  await app.getByTestId('evict-tiny-embed').click();
  await expect(app.getByTestId('state-tiny-embed')).toHaveText('not downloaded');
});
