/**
 * The owner's fleet page as a newcomer meets it: linked from the dashboard, its own words for
 * the owner's wallet, what a kiosk machine needs, its forms disabled until an owner wallet is
 * proven; no sideways scroll at 390 px and no axe-core violation in English, Korean and
 * Russian, each saved as a screenshot at 1280×800 and 390×844. (Enrolling, watching and
 * steering machines is e2e/kiosk.spec.ts.)
 */
import { mkdirSync, readFileSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { appUrl, expect, test } from './fixtures.ts';
import { openWithWallet } from './wallet-helpers.ts';

const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

const catalog = (lang: string, area: string): Record<string, string> =>
  JSON.parse(readFileSync(`web/i18n/${lang}/${area}.json`, 'utf8')) as Record<string, string>;

test('linked from the dashboard, with its own wallet words and what a kiosk needs; its forms wait for a proven owner wallet', async ({
  page,
}) => {
  await openWithWallet(page, outside, undefined, testWallet('fleet page owner'));
  await page.getByTestId('fleet-link').click();
  await expect(page).toHaveURL(/\/fleet\.html/);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(page.getByTestId('fleet-owner')).toContainText('The machines you enroll earn for this wallet');
  await expect(page.getByTestId('fleet-needs')).toContainText('WebGPU');
  await expect(page.getByTestId('fleet-needs')).toContainText('screen kept awake');
  await expect(page.getByTestId('fleet-hint')).toBeVisible();
  await expect(page.getByTestId('fleet-token-label')).toBeDisabled();
  await expect(page.getByTestId('fleet-token-issue')).toBeDisabled();
  // The page's settings (here the wallets list) go along with the links.
  await expect(page.getByTestId('dashboard-link')).toHaveAttribute('href', /^\/\?wallets=/);

  await page.getByTestId('fleet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await expect(page.getByTestId('fleet-token-label')).toBeEnabled();
  await expect(page.getByTestId('fleet-token-issue')).toBeEnabled();
  await expect(page.getByTestId('fleet-hint')).toBeHidden();
  await page.getByTestId('wallet-chip').click();
  await expect(page.getByTestId('wallet')).toContainText('enrolled machines earn for this wallet');
});

test('English, Korean and Russian at 1280×800 and 390×844: no sideways scroll, no axe violation, saved as screenshots', async ({
  browser,
}) => {
  test.setTimeout(180_000);
  mkdirSync('.cache/screenshots', { recursive: true });
  for (const lang of ['en', 'ko', 'ru']) {
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 844 },
    ]) {
      const page = await (await browser.newContext({ viewport })).newPage();
      await page.addInitScript((l) => localStorage.setItem('spinneret.lang', l), lang);
      await page.goto(`${appUrl()}/fleet.html`);
      await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
      await expect(page.getByTestId('fleet-owner')).toContainText(catalog(lang, 'fleet')['ownerTitle'] ?? '');
      const where = `${lang} ${viewport.width}`;
      const scroll = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(scroll, where).toBe(0);
      const result = await new AxeBuilder({ page }).analyze();
      expect(
        result.violations.map((v) => v.id),
        where,
      ).toEqual([]);
      await page.screenshot({ path: `.cache/screenshots/fleet-${lang}-${viewport.width}x${viewport.height}.png` });
      await page.context().close();
    }
  }
});
