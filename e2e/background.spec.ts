/**
 * A truly hidden tab keeps working. Playwright reports every page it drives as visible, so
 * this test launches Chromium itself and drives it over the DevTools protocol
 * (bench/background/hidden-tab.ts): minimizing the window makes the page hidden for real.
 */
import { launchChromium, type HiddenTabBrowser } from '../bench/background/hidden-tab.ts';
import { DECODER_TEST_PROMPTS, decoderTokenizer } from '../modelhost/reference.ts';
import { RequesterClient } from '../requester/client.ts';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import { expect, test } from './fixtures.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set: run through playwright.config.ts`);
  return value;
};

let browser: HiddenTabBrowser | null = null;
test.afterEach(async () => {
  await browser?.close();
  browser = null;
});

test('a hidden tab keeps leasing and completing jobs and reports itself hidden', async () => {
  browser = await launchChromium();
  const tab = await browser.open(env('SPINNERET_APP_URL'));
  await tab.waitFor(`document.querySelector('#app')?.dataset.ready === 'true'`);
  // Start, and run unpaid when asked for a wallet (this test has none).
  await tab.evaluate(`document.querySelector('[data-testid="contrib-toggle"]').click()`);
  await tab.evaluate(`document.querySelector('[data-testid="contrib-unpaid"]').click()`);
  await tab.waitFor(`/connected|working/.test(document.querySelector('[data-testid="contribute"]')?.dataset.state ?? '')`);
  const status = (): Promise<ContributorStatus> => tab.evaluate<ContributorStatus>('window.spinneret.bridge.api.contributorStatus()');

  const client = new RequesterClient({ coordinatorUrl: env('SPINNERET_COORDINATOR_URL'), apiKey: env('SPINNERET_E2E_API_KEY') });
  const generate = (i: number) =>
    client.run({
      kind: 'generate',
      model: 'tiny-decoder',
      prompt: decoderTokenizer().encode(DECODER_TEST_PROMPTS[i % 4] ?? 'Hello').ids,
      maxTokens: 8,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    });
  // Visible first: the model loads, so the hidden phase measures steady work.
  await generate(0);
  expect(await tab.visibility()).toBe('visible');

  await tab.hide();
  await expect.poll(() => tab.visibility()).toBe('hidden');
  await expect.poll(async () => (await status()).visibility).toBe('hidden');
  const before = (await status()).jobsDone;
  for (let i = 1; i <= 6; i++) {
    const result = await generate(i);
    expect(result.kind).toBe('generate');
    // Asserted while the jobs complete, not only at the end: the page stayed hidden throughout.
    expect(await tab.visibility()).toBe('hidden');
  }
  const after = await status();
  expect(after.jobsDone - before).toBe(6);
  expect(after.state).not.toBe('paused');
  // The pace the worker measures (and sends in `status`) covers the hidden jobs.
  expect(after.pace?.jobsPerMinute).toBeGreaterThan(0);
  expect(after.recentJobs.at(-1)?.end).toBeGreaterThan(Date.now() - 60_000);

  await tab.show();
  await expect.poll(async () => (await status()).visibility).toBe('visible');
});
