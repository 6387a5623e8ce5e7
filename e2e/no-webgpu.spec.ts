/** A browser without WebGPU: a clear message, WASM where the model allows it, a typed refusal where it does not. */
import { referenceEmbed } from '../modelhost/reference.ts';
import { CHROMIUM_ARGS } from '../scripts/chromium.ts';
import { expect, loadError, runJob, test } from './fixtures.ts';

test.use({
  launchOptions: {
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu'), '--disable-gpu'],
  },
});

test('without WebGPU the page says so, embeddings run on WASM, and a WebGPU-only model is refused with what to do', async ({ app }) => {
  await expect(app.getByTestId('gpu-missing')).toContainText('WebGPU is not available');
  const texts = ['no gpu here', 'the cpu does the work'];
  const answer = await runJob(app, { kind: 'embed', model: 'tiny-embed', inputs: texts });
  if (!answer.ok) throw new Error(answer.error.message);
  expect(answer.outcome.backend).toBe('wasm');
  if (answer.outcome.result.kind !== 'embed') throw new Error('not an embedding');
  const reference = referenceEmbed(texts);
  answer.outcome.result.embeddings.forEach((row, i) =>
    row.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)),
  );

  const refused = await loadError(app, 'tiny-q4');
  expect(refused).toMatchObject({ code: 'WEBGPU_UNAVAILABLE', typed: true });
  expect(refused?.message).toMatch(/Chrome or Edge/);
});
