/**
 * The contributor dashboard as a newcomer meets it. The first screen answers "is it working,
 * what have I earned, what will this device earn" with one primary button, at 1280×800 and
 * 390×844, in English, Korean and Russian, with no sideways scroll and no axe-core violation
 * (each saved as a screenshot under `.cache/screenshots/`). Start asks for a wallet first; a
 * requester's job is earned, verified and paid on the local TON chain; the chart and history
 * survive a reload. The status settles under a steady trickle of jobs, and a wrong setting is
 * said beside its field and switches its rule off.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import type { Browser, Page } from '@playwright/test';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, openSections, startContributing, stopContributing, test } from './fixtures.ts';
import { coordinatorUrl, nanoOf, openWithWallet, owedForEmbeddings } from './wallet-helpers.ts';

const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

/** Balances add up per wallet: this test earns into its own. */
const newcomer = testWallet('spinneret dashboard newcomer');
const LANGS = ['en', 'ko', 'ru'] as const;
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
] as const;

const catalog = (lang: string, area: string): Record<string, string> =>
  JSON.parse(readFileSync(`web/i18n/${lang}/${area}.json`, 'utf8')) as Record<string, string>;

const requester = (): RequesterClient =>
  new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey: process.env['SPINNERET_E2E_API_KEY'] ?? '' });

async function axeViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Elements wider than the page, and whether the page scrolls sideways. */
async function sideways(page: Page): Promise<{ scrolls: boolean; wide: string[] }> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).position !== 'fixed')
      .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
    return { scrolls: document.documentElement.scrollWidth > width, wide: wide.slice(0, 5) };
  });
}

test('a newcomer sees the three answers, Start asks for a wallet first, a job is paid on chain, and the history survives a reload', async ({
  page,
}) => {
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

  // What Spinneret is, in one line, and that this machine sees the jobs it runs, beside the button.
  await expect(page.locator('.tagline')).toContainText('runs AI jobs on this browser’s GPU');
  await expect(page.getByTestId('primary-bar')).toContainText('Your machine can see the jobs it runs');
  await expect(page.getByTestId('intro')).toContainText('Your machine can see the jobs it runs', { useInnerText: false });
  await expect(page.getByTestId('contrib-state')).toHaveText('Not contributing');
  await expect(page.getByTestId('earned')).toContainText('Connect a wallet to be paid');

  // The estimate, from the benchmark and the network's demand and prices, before anything large is downloaded;
  // the first Start's download, the onnxruntime WASM included, said in numbers.
  const estimate = page.getByTestId('estimate');
  await expect(estimate).toHaveAttribute('data-nano-mid', /^\d+$/, { timeout: 120_000 });
  await expect(estimate).toContainText('Expect close to nothing'); // SwiftShader is a software adapter
  expect(Number(await estimate.getAttribute('data-download-bytes'))).toBeGreaterThan(1_000_000);
  await expect(page.getByTestId('estimate-download')).toContainText('AI runtime');
  await expect(page.getByTestId('chart-summary')).toContainText('No work yet');

  // Start asks for a wallet first; connecting it starts by itself once proven.
  await page.getByTestId('contrib-toggle').click();
  await expect(page.getByTestId('contrib-choice')).toBeVisible();
  await expect(page.getByTestId('contrib-choice')).toContainText('Run unpaid');
  await page.getByTestId('choice-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  await expect(page.getByTestId('contrib-toggle')).toHaveText('Stop');

  // A requester's job, through the coordinator, to this tab.
  const texts = ['a newcomer’s first job'];
  expect((await requester().run({ kind: 'embed', model: 'tiny-embed', inputs: texts })).kind).toBe('embed');
  await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');
  await expect(page.getByTestId('contrib-state')).toHaveText('Working');
  await expect(page.getByTestId('contrib-help')).toContainText('1 job in 10 min');

  // Pending inside the verification window, then verified, then paid on the sandbox chain, with the transaction.
  const owed = owedForEmbeddings('tiny-embed', texts);
  await expect.poll(() => nanoOf(page, 'earn-pending'), { timeout: 20_000 }).toBe(owed);
  await expect(page.getByTestId('earned')).toHaveAttribute('data-nano', owed.toString());
  await expect(page.getByTestId('earned-payout')).toContainText('Payouts start at');
  await expect.poll(() => nanoOf(page, 'earn-verified'), { timeout: 30_000 }).toBe(owed);
  await expect.poll(() => nanoOf(page, 'earn-paid'), { timeout: 60_000 }).toBe(owed);
  expect(await nanoOf(page, 'earn-pending')).toBe(0n);
  await openSections(page);
  await expect(page.getByTestId('earn-tx').first()).toHaveAttribute('data-hash', /^[0-9a-f]{64}$/);
  await expect(page.getByTestId('earn-payouts').locator('li').first()).toHaveAttribute('data-status', 'paid');
  await expect(page.getByTestId('earn-payouts')).toContainText('local test chain');

  // Receipts and the verification record, in words, where the coordinator publishes them.
  const contributorId = (await page.getByTestId('contrib-counts').getAttribute('data-contributor')) ?? '';
  const receiptsRoute = await fetch(`${coordinatorUrl()}/v1/contributors/${contributorId}/receipts?limit=50`);
  if (receiptsRoute.status === 404) {
    await expect(page.getByTestId('earn-receipts-box')).toContainText('does not publish receipts');
  } else {
    await expect(page.getByTestId('earn-receipts').locator('li')).toHaveCount(1);
    await expect(page.getByTestId('earn-receipts')).toContainText('tokens');
    await expect(page.getByTestId('verification')).toContainText(/In good standing|Quarantined/);
    await expect(page.getByTestId('verification')).toContainText('Every device starts at 0.5');
    // The chart shows the job's TON in its minute.
    await expect(page.getByTestId('throughput')).toHaveAttribute('data-jobs', '1');
  }
  mkdirSync('.cache/screenshots', { recursive: true });
  await page.screenshot({ path: '.cache/screenshots/dashboard-after-payout.png', fullPage: true });
  expect(await violations()).toEqual([]);
  await stopContributing(page);
  await expect(page.getByTestId('contrib-state')).toHaveText('Not contributing');

  // History is kept on this device: after a reload the chart still has the minute with the job.
  const jobIds = () =>
    page
      .getByTestId('earn-receipts-box')
      .locator('li[data-job]')
      .evaluateAll((items) => items.map((i) => i.getAttribute('data-job')));
  const receiptsBefore = await jobIds();
  await page.reload();
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(page.getByTestId('throughput')).toHaveAttribute('data-jobs', '1');
  await expect(page.getByTestId('chart')).not.toHaveAttribute('data-empty', 'true');
  if (receiptsRoute.status !== 404) expect(await jobIds()).toEqual(receiptsBefore);
  // The benchmark is not run again, and the wallet is still proven, without TON Connect.
  await expect(page.getByTestId('bench-gflops')).toHaveCount(0);
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  expect(await violations()).toEqual([]);
});

/** A fresh visitor in `lang` at `viewport`, with the benchmark already measured (it runs once per browser). */
async function visit(
  browser: Browser,
  lang: string,
  viewport: { width: number; height: number },
  gflops: number,
  path = '/',
): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.addInitScript(
    ({ lang, gflops }) => {
      localStorage.setItem('spinneret.lang', lang);
      if (location.pathname === '/' && localStorage.getItem('spinneret.history') === null)
        localStorage.setItem(
          'spinneret.history',
          JSON.stringify({ points: [], receipts: [], benchmark: { gflops, gbps: 1, at: Date.now() } }),
        );
    },
    { lang, gflops },
  );
  await page.goto(`${appUrl()}${path}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  return page;
}

test('the first screen, in English, Korean and Russian, at 1280×800 and 390×844: three answers and the button above the fold, no sideways scroll, no axe violation', async ({
  app,
  browser,
}) => {
  test.setTimeout(300_000);
  // The benchmark, measured once here; the visits below reuse its figure.
  await expect(app.getByTestId('bench-gflops')).toContainText('GFLOP/s', { timeout: 120_000 });
  const gflops =
    (await app.evaluate(() => JSON.parse(localStorage.getItem('spinneret.history') ?? '{}') as { benchmark?: { gflops: number } }))
      .benchmark?.gflops ?? 1;
  mkdirSync('.cache/screenshots', { recursive: true });
  for (const lang of LANGS) {
    for (const viewport of VIEWPORTS) {
      const page = await visit(browser, lang, viewport, gflops);
      const where = `${lang} ${viewport.width}×${viewport.height}`;
      await expect(page.locator('html')).toHaveAttribute('lang', lang);
      await expect(page.getByTestId('contrib-state')).toHaveText(catalog(lang, 'contrib')['shown_off'] ?? '');
      await expect(page.getByTestId('estimate')).toHaveAttribute('data-nano-mid', /^\d+$/);
      await expect(page).toHaveTitle(catalog(lang, 'app')['documentTitle'] ?? '');
      for (const id of ['contrib-state', 'earned', 'estimate', 'contrib-toggle']) {
        const box = await page.getByTestId(id).boundingBox();
        expect(box, `${where} ${id}`).not.toBeNull();
        expect((box?.y ?? 0) + (box?.height ?? 0), `${where}: ${id} is above the fold`).toBeLessThanOrEqual(viewport.height);
        expect(box?.y ?? -1, `${where}: ${id}`).toBeGreaterThanOrEqual(0);
      }
      expect(await sideways(page), where).toEqual({ scrolls: false, wide: [] });
      if (lang === 'ko') expect(await page.evaluate(() => getComputedStyle(document.body).wordBreak)).toBe('keep-all');
      expect(await axeViolations(page), where).toEqual([]);
      await page.screenshot({ path: `.cache/screenshots/dashboard-${lang}-${viewport.width}x${viewport.height}.png` });
      // Open, the sections do not scroll sideways either (models and settings are cards and fields, not tables).
      await openSections(page);
      expect(await sideways(page), `${where} with the sections open`).toEqual({ scrolls: false, wide: [] });
      expect(await axeViolations(page), `${where} with the sections open`).toEqual([]);
      await page.context().close();
    }
  }
  // The language switch changes the words at once and is kept.
  await app.getByTestId('language').selectOption('ru');
  await expect(app.locator('html')).toHaveAttribute('lang', 'ru');
  await expect(app.getByTestId('contrib-state')).toHaveText(catalog('ru', 'contrib')['shown_off'] ?? '');
  await app.reload();
  await expect(app.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(app.getByTestId('contrib-state')).toHaveText(catalog('ru', 'contrib')['shown_off'] ?? '');
});

test('under a steady trickle (a job every 3 s) the status says "Working" once, in one live region, and the chart’s axis spans the last minutes up to now', async ({
  app,
}) => {
  test.setTimeout(180_000);
  await app.evaluate(() => window.spinneret?.bridge.api.load('tiny-embed'));
  // One live region on the page (the status), besides the alerts for errors.
  expect(await app.locator('#app [role="status"], #app [aria-live]').count()).toBe(1);
  await startContributing(app);
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  const client = requester();
  expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: ['first'] })).kind).toBe('embed');
  await expect(app.getByTestId('contrib-state')).toHaveText('Working');
  // Every change of the live region's text from here on, and of the raw state the worker reports.
  await app.evaluate(() => {
    const w = window as unknown as { liveChanges: string[]; rawStates: string[] };
    w.liveChanges = [];
    w.rawStates = [];
    const live = document.querySelector('[data-testid="contrib-state"]');
    const band = document.querySelector('[data-testid="contribute"]') as HTMLElement;
    if (live === null) throw new Error('no live region');
    new MutationObserver(() => w.liveChanges.push(live.textContent ?? '')).observe(live, {
      subtree: true,
      childList: true,
      characterData: true,
    });
    new MutationObserver(() => w.rawStates.push(band.dataset['state'] ?? '')).observe(band, {
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });
  const started = Date.now();
  let jobs = 0;
  while (Date.now() - started < 30_000) {
    expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: [`trickle ${jobs}`] })).kind).toBe('embed');
    jobs++;
    await app.waitForTimeout(3000);
  }
  const seen = await app.evaluate(() => {
    const w = window as unknown as { liveChanges: string[]; rawStates: string[] };
    return { liveChanges: w.liveChanges, rawStates: w.rawStates };
  });
  console.log(
    `trickle: ${jobs} jobs in 30 s; the worker's state changed ${seen.rawStates.length} times, the live region ${seen.liveChanges.length} times`,
  );
  // The worker went between working and connected with every job; the status did not.
  expect(seen.rawStates.filter((s) => s === 'working').length).toBeGreaterThanOrEqual(jobs - 1);
  expect(seen.liveChanges).toEqual([]);
  await expect(app.getByTestId('contrib-state')).toHaveText('Working');
  await expect(app.getByTestId('contrib-help')).toContainText(/Last job .* · \d+ jobs in 10 min/);
  // The tab's title and icon follow the state.
  await expect(app).toHaveTitle('Working · Spinneret');
  expect(decodeURIComponent((await app.locator('link[rel="icon"]').getAttribute('href')) ?? '')).toContain('#16a34a');

  // In the first minutes of work the time axis spans at most the last hour, and ends now.
  const chart = app.getByTestId('chart');
  await expect(chart).not.toHaveAttribute('data-empty', 'true');
  const [from, to, now] = await Promise.all([
    chart.getAttribute('data-from'),
    chart.getAttribute('data-to'),
    app.evaluate(() => Date.now()),
  ]);
  expect(Number(to) - Number(from)).toBeLessThanOrEqual(60 * 60_000);
  expect(Math.abs(now - Number(to))).toBeLessThan(10_000);
  await stopContributing(app);
  await expect(app).toHaveTitle(catalog('en', 'app')['documentTitle'] ?? '');
});

test('from the keyboard: the language switch and the primary button are reached with Tab, and focus stays on the button after Start', async ({
  app,
}) => {
  const reached: string[] = [];
  for (let i = 0; i < 20 && !reached.includes('contrib-toggle'); i++) {
    await app.keyboard.press('Tab');
    reached.push(
      await app.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset['testid'] ?? document.activeElement?.tagName ?? ''),
    );
  }
  expect(reached).toContain('language');
  expect(reached.indexOf('language')).toBeLessThan(reached.indexOf('contrib-toggle'));
  const outline = await app.getByTestId('contrib-toggle').evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).toBe('solid');
  // Enter: the page asks for a wallet; "Run unpaid" from the keyboard; focus returns to the button, now Stop.
  await app.keyboard.press('Enter');
  await expect(app.getByTestId('choice-connect')).toBeFocused();
  await app.keyboard.press('Tab');
  await expect(app.getByTestId('contrib-unpaid')).toBeFocused();
  await app.keyboard.press('Enter');
  await expect(app.getByTestId('contrib-toggle')).toBeFocused();
  await expect(app.getByTestId('contrib-toggle')).toHaveAttribute('aria-pressed', 'true');
  expect(await app.evaluate(() => document.activeElement === document.body)).toBe(false);
  await app.keyboard.press('Enter');
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', 'idle');
  await expect(app.getByTestId('contrib-toggle')).toBeFocused();
});

test('a wrong setting is said beside its field, in words, and clears when fixed; until then its rule is off, not the old one', async ({
  app,
}) => {
  const controls = () => app.evaluate(() => window.spinneret?.bridge.api.controls());
  const schedule = app.getByTestId('controls-schedule');
  const error = app.getByTestId('controls-schedule-error');
  await schedule.fill('22:00-07:00');
  await schedule.press('Tab');
  await expect(app.getByTestId('controls-schedule-saved')).toBeVisible();
  await expect.poll(async () => (await controls())?.schedule).toEqual([{ start: '22:00', end: '07:00' }]);
  await expect(app.getByTestId('rules-words')).toContainText('only 22:00–07:00');

  // Typing a wrong time: the error shows at once, beside the field, in words, not schema words.
  await schedule.fill('25:00-07:00');
  await expect(error).toHaveText(/Hours go from 00 to 23/);
  await expect(schedule).toHaveAttribute('aria-invalid', 'true');
  const [field, said] = await Promise.all([schedule.boundingBox(), error.boundingBox()]);
  expect(Math.abs((said?.y ?? 1e9) - ((field?.y ?? 0) + (field?.height ?? 0)))).toBeLessThan(40);
  await expect(app.getByTestId('controls-schedule-saved')).toBeHidden();
  // Leaving it wrong switches the schedule off, and says so: the old 22:00–07:00 does not stay in force unseen.
  await schedule.press('Tab');
  await expect.poll(async () => (await controls())?.schedule).toEqual([]);
  await expect(error).toContainText('no schedule applies until you fix it');
  await expect(app.getByTestId('rules-words')).toContainText('any time');
  // Fixed: the error clears as it is typed, and the field has its own saved mark.
  await schedule.fill('12:00-13:00');
  await expect(error).toBeEmpty();
  await schedule.press('Tab');
  await expect(app.getByTestId('controls-schedule-saved')).toBeVisible();
  await expect.poll(async () => (await controls())?.schedule).toEqual([{ start: '12:00', end: '13:00' }]);

  // The same for a number.
  const battery = app.getByTestId('controls-battery-min');
  await battery.fill('150');
  await expect(app.getByTestId('controls-battery-min-error')).toHaveText(/whole number from 0 to 100/);
  await battery.press('Tab');
  await expect.poll(async () => (await controls())?.minBatteryPercent).toBeNull();
  await battery.fill('40');
  await expect(app.getByTestId('controls-battery-min-error')).toBeEmpty();
  await battery.press('Tab');
  await expect.poll(async () => (await controls())?.minBatteryPercent).toBe(40);
  await expect(app.getByTestId('controls-battery-min-saved')).toBeVisible();
  // One way to pause: the primary button; no second pause switch in the settings.
  await expect(app.getByTestId('controls-pause')).toHaveCount(0);
  // Help under each field that needs it.
  await expect(app.getByTestId('field-controls-max-download').locator('.help')).toContainText('AI runtime');
});
