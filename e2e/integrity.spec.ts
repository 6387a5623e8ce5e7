/** Model files are checked (SHA-256, size) before use; a bad file is refused, discarded and never cached. */
import { testModels } from '../modelhost/models/index.ts';
import { modelFilePath } from '../modelhost/server.ts';
import type { ModelSummary } from '../worker/runtime.ts';
import { expect, fixturesUrl, loadError, openWith, runJob, test } from './fixtures.ts';

async function corrupt(path: string, on: boolean): Promise<void> {
  const response = await fetch(`${fixturesUrl()}/__corrupt${path}`, { method: on ? 'PUT' : 'DELETE' });
  expect(response.status).toBe(204);
}

test('a corrupted model file is refused with a clear message, discarded, and the model loads once the host is fixed', async ({ page }) => {
  const entry = testModels().embed.entry;
  const path = modelFilePath(entry.id, entry.onnx.model);
  await openWith(page, `${fixturesUrl()}/manifest.json`);
  await corrupt(path, true);
  try {
    const error = await loadError(page, entry.id);
    expect(error).toMatchObject({ code: 'INTEGRITY', name: 'IntegrityError', typed: true });
    expect(error?.message).toContain(entry.onnx.model);
    expect(error?.message).toMatch(/failed its integrity check.*discarded/);
    const models: ModelSummary[] = await page.evaluate(() => window.spinneret?.bridge.api.models() ?? Promise.resolve([]));
    expect(models.find((m) => m.id === entry.id)?.cached).toBe(false);
    // Through the page's own button: the message is shown in words.
    await page.getByTestId(`load-${entry.id}`).click();
    await expect(page.getByTestId('error')).toHaveAttribute('data-code', 'INTEGRITY');
    await expect(page.getByTestId('error')).toContainText('failed its integrity check');
  } finally {
    await corrupt(path, false);
  }
  expect(await loadError(page, entry.id)).toBeNull();
  const answer = await runJob(page, { kind: 'embed', model: entry.id, inputs: ['fixed'] });
  expect(answer.ok).toBe(true);
});

test('an unreachable manifest is reported in words', async ({ page }) => {
  await openWith(page, 'http://127.0.0.1:9/manifest.json');
  await expect(page.getByTestId('error')).toHaveAttribute('data-code', 'MODEL_UNREACHABLE');
  await expect(page.getByTestId('error')).toContainText('Check the network connection');
});
