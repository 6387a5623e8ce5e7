/**
 * A contributor tab whose GPU device is lost more often than the worker recreates it (4 losses
 * within a minute): it stops GPU work instead of failing every job, tells the coordinator, says so
 * on the page, and keeps taking the jobs that run on WASM. Against the real local network.
 */
import { referenceEmbed } from '../modelhost/reference.ts';
import { RequesterClient } from '../requester/client.ts';
import { expect, startContributing, test } from './fixtures.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set: run through playwright.config.ts`);
  return value;
};

test('a GPU lost too often is given up: the page says to reload, GPU work stops, WASM jobs go on', async ({ app }) => {
  test.setTimeout(180_000);
  await startContributing(app);
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/, { timeout: 60_000 });

  // The page's "simulate GPU loss" button exists only in development builds: the test asks the worker, as the button does.
  const losses = await app.evaluate(async () => {
    for (let i = 0; i < 4; i++) await window.spinneret?.bridge.api.loseDevice();
    return (await window.spinneret?.bridge.api.status())?.deviceLosses ?? -1;
  });
  expect(losses).toBe(4);

  const line = app.getByTestId('controls-device');
  await expect(line).toContainText('Reload the tab', { timeout: 30_000 });
  await expect(line).toContainText('WASM');
  await expect(line).toHaveClass(/error/);
  const status = await app.evaluate(() => window.spinneret?.bridge.api.contributorStatus() ?? null);
  expect(status?.device.retired?.wasmModels).toBeGreaterThan(0);
  expect(status?.pausedBy).toBeNull();
  expect(await app.evaluate(async () => (await window.spinneret?.bridge.api.status())?.gpu === null)).toBe(true);

  // Jobs of models that list WASM still come to this tab, and run there.
  const done = Number((await app.getByTestId('contrib-counts').getAttribute('data-done')) ?? '0');
  const requester = new RequesterClient({ coordinatorUrl: env('SPINNERET_COORDINATOR_URL'), apiKey: env('SPINNERET_E2E_API_KEY') });
  const texts = ['the tab went on without its GPU'];
  const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: texts });
  if (result.kind !== 'embed') throw new Error('not an embedding');
  const reference = referenceEmbed(texts);
  result.embeddings.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)));
  expect(result.attempts).toBe(1);
  await expect(app.getByTestId('contrib-counts')).toHaveAttribute('data-done', String(done + 1));
  const loaded = await app.evaluate(async () => (await window.spinneret?.bridge.api.loaded()) ?? []);
  expect(loaded.find((m) => m.modelId === 'tiny-embed')?.backend).toBe('wasm');
});
