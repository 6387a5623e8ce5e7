/**
 * web-llm in the worker, up to loading the model library: no MLC model can run on machines
 * without internet (weights and libraries live on Hugging Face and GitHub), so these tests
 * cover configuration and every error path before generation, each as a typed error.
 */
import { MLC_FIXTURE_EXPECTED } from '../modelhost/mlc.ts';
import type { ModelSummary } from '../worker/runtime.ts';
import { expect, fixturesUrl, loadError, openWith, test } from './fixtures.ts';

test.beforeEach(async ({ page }) => {
  await openWith(page, `${fixturesUrl()}/manifest.json`);
});

test('chat models get the q4f32_1 build on an adapter without shader-f16, and the checks run before any download', async ({ page }) => {
  const models: ModelSummary[] = await page.evaluate(() => window.spinneret?.bridge.api.models() ?? Promise.resolve([]));
  const plan = (id: string) => models.find((m) => m.id === id);
  expect(plan('tiny-mlc-two-builds')?.plan).toMatchObject({ backend: 'webllm:q4f32_1', memoryBytes: 64 * 1024 * 1024 });
  expect(plan('tiny-mlc-f16-only')).toMatchObject({ plan: null, blocked: { code: 'FEATURE_MISSING' } });
  expect(plan('tiny-mlc-too-large')).toMatchObject({ plan: null, blocked: { code: 'MODEL_TOO_LARGE' } });
  // The page shows why, and does not offer to load it.
  await expect(page.getByTestId('state-tiny-mlc-f16-only')).toContainText('shader-f16');
  await expect(page.getByTestId('load-tiny-mlc-f16-only')).toBeDisabled();
});

for (const [modelId, expected] of Object.entries(MLC_FIXTURE_EXPECTED)) {
  test(`web-llm error path: ${modelId} fails with ${expected.code}`, async ({ page }) => {
    const error = await loadError(page, modelId);
    expect(error).toMatchObject({ code: expected.code, typed: true });
    expect(error?.message).toContain(expected.messageIncludes);
    // The worker survives: an ONNX model still loads and runs afterwards.
    expect(await loadError(page, 'tiny-embed')).toBeNull();
  });
}
