/**
 * The contributor dashboard as a newcomer meets it: the explanation, the GPU probe and an
 * earnings estimate before anything large is downloaded, Start, a job from a requester,
 * earnings pending → verified → paid on the local TON chain with the transaction, the
 * throughput chart and the history after a reload. Then the three languages: each switches
 * the words, passes an axe-core scan and is saved as a screenshot under `.cache/screenshots/`.
 */
import { readFileSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, test } from './fixtures.ts';
import { coordinatorUrl, nanoOf, openWithWallet, owedForEmbeddings } from './wallet-helpers.ts';

const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

/** Balances add up per wallet: this test earns into its own. */
const newcomer = testWallet('spinneret dashboard newcomer');

const catalog = (lang: string, area: string): Record<string, string> =>
  JSON.parse(readFileSync(`web/i18n/${lang}/${area}.json`, 'utf8')) as Record<string, string>;

async function axeViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('a newcomer sees the probe and an estimate, contributes, is paid on chain, and the history survives a reload', async ({ page }) => {
  test.setTimeout(300_000);
  // The Content Security Policy is served, and nothing the page does on this path breaks it.
  const served = await fetch(appUrl());
  const csp = served.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
  expect(csp).toContain(new URL(coordinatorUrl()).origin);
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    window.addEventListener('securitypolicyviolation', (e: SecurityPolicyViolationEvent) =>
      seen.push(`${e.effectiveDirective} ${e.blockedURI}`),
    );
  });
  const violations = (): Promise<string[]> => page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);
  await openWithWallet(page, outside, undefined, newcomer);

  // First visit: what Spinneret does, open, including that this machine sees the jobs it runs.
  const intro = page.getByTestId('intro');
  await expect(intro).toHaveJSProperty('open', true);
  await expect(intro).toContainText('Your machine can see the jobs it runs');

  // The probe, then the estimate from the benchmark and the network's prices, before any model is downloaded.
  await expect(page.getByTestId('gpu-adapter')).toContainText('swiftshader');
  await expect(page.getByTestId('bench-gflops')).toContainText('GFLOP/s', { timeout: 120_000 });
  const estimate = page.getByTestId('estimate');
  await expect(estimate).toHaveAttribute('data-nano-hour', /^[1-9]\d*$/);
  await expect(estimate).toContainText('This is an estimate, not a promise');
  await expect(estimate).toContainText(/about [\d.]+ TON per hour of work/);
  await expect(page.getByTestId('models').locator('[data-testid^="state-"]').first()).toBeVisible();
  await expect(page.getByTestId('models').getByText(/^(cached|loaded on)/)).toHaveCount(0);
  await expect(page.getByTestId('chart-summary')).toContainText('No work yet');

  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await page.getByTestId('contrib-start').click();
  await expect(page.getByTestId('contrib-state')).toContainText('Connected, waiting for jobs (no demand right now)');
  await expect(page.getByTestId('contrib-help')).toContainText('Idle because nobody needs a job run');

  // A requester's job, through the coordinator, to this tab.
  const client = new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey: process.env['SPINNERET_E2E_API_KEY'] ?? '' });
  const texts = ['a newcomer’s first job'];
  expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: texts })).kind).toBe('embed');
  await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');
  await expect(page.getByTestId('chart')).toHaveAttribute('data-points', '1');
  await expect(page.getByTestId('chart-summary')).toContainText('1 job(s) in all');

  // Pending inside the verification window, then verified, then paid on the sandbox chain, with the transaction.
  const owed = owedForEmbeddings('tiny-embed', texts);
  await expect.poll(() => nanoOf(page, 'earn-pending'), { timeout: 20_000 }).toBe(owed);
  expect(await nanoOf(page, 'earn-paid')).toBe(0n);
  await expect.poll(() => nanoOf(page, 'earn-verified'), { timeout: 30_000 }).toBe(owed);
  await expect.poll(() => nanoOf(page, 'earn-paid'), { timeout: 60_000 }).toBe(owed);
  expect(await nanoOf(page, 'earn-pending')).toBe(0n);
  await expect(page.getByTestId('earn-tx').first()).toHaveText(/^[0-9a-f]{64}$/);
  await expect(page.getByTestId('earn-payouts').locator('li').first()).toHaveAttribute('data-status', 'paid');

  // Receipts and the verification record, where the coordinator publishes them.
  const contributorId = (await page.getByTestId('contrib-counts').getAttribute('data-contributor')) ?? '';
  expect(contributorId).not.toBe('');
  const receiptsRoute = await fetch(`${coordinatorUrl()}/v1/contributors/${contributorId}/receipts?limit=50`);
  if (receiptsRoute.status === 404) {
    await expect(page.getByTestId('earn-receipts-box')).toContainText('does not publish receipts');
  } else {
    await expect(page.getByTestId('earn-receipts').locator('li')).toHaveCount(1);
    await expect(page.getByTestId('verification')).toContainText(/In good standing|Quarantined/);
  }

  await page.screenshot({ path: '.cache/screenshots/dashboard-after-payout.png', fullPage: true });
  expect(await violations()).toEqual([]);
  await page.getByTestId('contrib-stop').click();
  await expect(page.getByTestId('contrib-state')).toContainText('Not contributing');

  // History is kept on this device: after a reload the chart still has the minute with the job.
  const receiptsBefore = await page.getByTestId('earn-receipts-box').textContent();
  await page.reload();
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(page.getByTestId('chart')).toHaveAttribute('data-points', '1');
  await expect(page.getByTestId('chart-summary')).toContainText('1 job(s) in all');
  if (receiptsRoute.status !== 404) await expect(page.getByTestId('earn-receipts-box')).toHaveText(receiptsBefore ?? '');
  // The explanation stays as the newcomer left it; the benchmark is not run again.
  await expect(page.getByTestId('bench-gflops')).toHaveCount(0);
  await expect(page.getByTestId('estimate')).toHaveAttribute('data-nano-hour', /^[1-9]\d*$/);
  expect(await violations()).toEqual([]);
});

test('English, Korean and Russian: the words switch, each passes an axe scan, and each is saved as a screenshot', async ({ app }) => {
  test.setTimeout(240_000);
  await expect(app.getByTestId('bench-gflops')).toContainText('GFLOP/s', { timeout: 120_000 });
  await expect(app.getByTestId('estimate')).toHaveAttribute('data-nano-hour', /^[1-9]\d*$/);
  for (const lang of ['en', 'ko', 'ru']) {
    await app.getByTestId('language').selectOption(lang);
    await expect(app.locator('html')).toHaveAttribute('lang', lang);
    await expect(app.locator('#contrib-h')).toHaveText(catalog(lang, 'contrib')['title'] ?? '');
    await expect(app.getByTestId('contrib-state')).toHaveText(catalog(lang, 'contrib')['idle'] ?? '');
    await expect(app.locator('#gpu-h + dl dt').first()).toHaveText(catalog(lang, 'gpu')['adapter'] ?? '');
    await expect(app.getByTestId('estimate')).toContainText((catalog(lang, 'gpu')['estimateAssumptions'] ?? '').slice(0, 20));
    await expect(app).toHaveTitle(catalog(lang, 'app')['documentTitle'] ?? '');
    expect(await axeViolations(app), lang).toEqual([]);
    await app.screenshot({ path: `.cache/screenshots/dashboard-${lang}.png`, fullPage: true });
  }
  // The choice is kept.
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(app.locator('#contrib-h')).toHaveText(catalog('ru', 'contrib')['title'] ?? '');
});

test('the dashboard works from the keyboard: the language switch and Start are reached with Tab, in order, with a visible focus', async ({
  app,
}) => {
  // The benchmark runs on the first visit; its button is disabled until it ends.
  await expect(app.getByTestId('bench')).toBeEnabled({ timeout: 120_000 });
  const reached: string[] = [];
  for (let i = 0; i < 40 && !reached.includes('contrib-start'); i++) {
    await app.keyboard.press('Tab');
    const id = await app.evaluate(
      () => (document.activeElement as HTMLElement | null)?.dataset['testid'] ?? document.activeElement?.tagName ?? '',
    );
    reached.push(id);
  }
  expect(reached).toContain('language');
  expect(reached).toContain('contrib-start');
  expect(reached.indexOf('language')).toBeLessThan(reached.indexOf('bench'));
  expect(reached.indexOf('bench')).toBeLessThan(reached.indexOf('contrib-start'));
  const outline = await app.getByTestId('contrib-start').evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).toBe('solid');
});
