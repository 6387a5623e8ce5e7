/**
 * Connecting a TON wallet: a test wallet injected into the page (TON Connect's injected
 * bridge, `window[key].tonconnect`) answers `connect` with a real v4R2 address and a real
 * `ton_proof` signed in Node; the coordinator checks the proof, the worker's hello carries
 * the session, and the coordinator records the wallet for that contributor. Also: a proof that
 * arrives while the device works applies at once; TON Connect loads only on a click, in the
 * page's language, offers only wallets whose bridge the CSP admits, says an offline list in
 * words, and closing its window leaves Connect usable.
 */
import type { Page } from '@playwright/test';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { RequesterClient } from '../requester/client.ts';
import { TON_CONNECT_BRIDGES } from '../scripts/serve.ts';
import { appUrl, expect, startContributing, stopContributing, test } from './fixtures.ts';
import { coordinatorUrl, nanoOf, openWithWallet, owedForEmbeddings, wallet } from './wallet-helpers.ts';

const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

const requester = (): RequesterClient =>
  new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey: process.env['SPINNERET_E2E_API_KEY'] ?? '' });

async function contributorWallet(page: Page): Promise<string | null> {
  const id = (await page.getByTestId('contrib-counts').getAttribute('data-contributor')) ?? '';
  const view = (await (await fetch(`${coordinatorUrl()}/v1/contributors/${id}`)).json()) as { wallet: string | null };
  return view.wallet;
}

/** Opens the page with `list` as its wallets list and no injected wallet: TON Connect's window then shows the list. */
async function openWithList(page: Page, list: unknown[], query = ''): Promise<void> {
  await page.route('**/listed-wallets.json', (route) => route.fulfill({ json: list }));
  await page.goto(`${appUrl()}/?wallets=${encodeURIComponent('/listed-wallets.json')}${query}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
}

/** Opens the wallet chip's menu (a click on its summary toggles it). */
async function openChip(page: Page): Promise<void> {
  if ((await page.locator('details.chip').getAttribute('open')) === null) await page.getByTestId('wallet-chip').click();
}

const remoteWallet = (appName: string, name: string, bridge: string) => ({
  app_name: appName,
  name,
  image: '/icon-180.png',
  about_url: 'https://example.invalid',
  universal_url: 'https://example.invalid/ton-connect',
  bridge: [{ type: 'sse', url: bridge }],
  platforms: ['ios', 'android', 'chrome'],
});

test('a proven wallet is shown, and the coordinator credits the contributor whose hello carries its session', async ({ page }) => {
  await openWithWallet(page, outside);
  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await openChip(page);
  await expect(page.getByTestId('wallet-address')).toHaveText(wallet.friendlyTestnet);
  await expect(page.getByTestId('wallet-network')).toHaveText('testnet');
  await expect(page.getByTestId('wallet-error')).toBeEmpty();

  // With a proven wallet, Start starts at once.
  await startContributing(page, { unpaid: false });
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  await expect.poll(() => contributorWallet(page)).toBe(wallet.address);
  await stopContributing(page);

  await openChip(page);
  await page.getByTestId('wallet-disconnect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'disconnected');
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
});

test('a proof signed for another site is refused with a clear error and the wallet is dropped', async ({ page }) => {
  await openWithWallet(page, outside, 'evil.example');
  await page.getByTestId('wallet-connect').click();
  const error = page.getByTestId('wallet-error');
  await expect(error).toHaveAttribute('data-reason', 'domain-not-allowed');
  await expect(error).toContainText('evil.example');
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'disconnected');
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
});

test('a wallet proven while the device works: the next job is credited, with no restart', async ({ page }) => {
  const late = testWallet('spinneret proven mid-run');
  await openWithWallet(page, outside, undefined, late);
  // Start asks for a wallet first; this contributor runs unpaid.
  await page.getByTestId('contrib-toggle').click();
  await expect(page.getByTestId('contrib-choice')).toBeVisible();
  await page.getByTestId('contrib-unpaid').click();
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  await expect(page.getByTestId('earned')).toContainText('Running unpaid');
  // Warm the model so the jobs below run well inside their leases.
  await page.evaluate(() => window.spinneret?.bridge.api.load('tiny-embed'));
  const client = requester();
  expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: ['an unpaid job'] })).kind).toBe('embed');
  await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');
  expect(await contributorWallet(page)).toBeNull();
  const contributorId = await page.getByTestId('contrib-counts').getAttribute('data-contributor');

  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  // The worker says hello again with the session: the coordinator records the wallet, with no Stop and Start.
  await expect.poll(() => contributorWallet(page), { timeout: 20_000 }).toBe(late.address);
  const texts = ['the first paid job'];
  expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: texts })).kind).toBe('embed');
  await expect.poll(() => nanoOf(page, 'earn-pending'), { timeout: 20_000 }).toBe(owedForEmbeddings('tiny-embed', texts));
  // The same run: its count went on from 1 (a restart starts from 0), on the same device id.
  const status = await page.evaluate(() => window.spinneret?.bridge.api.contributorStatus());
  expect(status?.jobsDone).toBe(2);
  expect(status?.contributorId).toBe(contributorId);
  await expect(page.getByTestId('contrib-toggle')).toHaveAttribute('aria-pressed', 'true');
  await stopContributing(page);
});

test('earnings go from pending to paid on the local TON chain, and the page shows the payout transaction', async ({ page }) => {
  await openWithWallet(page, outside);
  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await startContributing(page, { unpaid: false });
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);

  const client = requester();
  const texts = ['the first paid job', 'and the second one'];
  for (const text of texts) {
    expect((await client.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] })).kind).toBe('embed');
  }
  // What the price list owes for these two jobs, computed here from the tokens, independently of the ledger.
  const owed = owedForEmbeddings('tiny-embed', texts);
  expect(owed).toBeGreaterThan(0n);
  const nano = (id: string): Promise<bigint> => nanoOf(page, id);
  const total = async (): Promise<bigint> =>
    (await nano('earn-pending')) + (await nano('earn-settled')) + (await nano('earn-inflight')) + (await nano('earn-paid'));
  // Inside the verification window the credit is pending…
  await expect.poll(() => nano('earn-pending'), { timeout: 20_000 }).toBeGreaterThan(0n);
  await expect.poll(total, { timeout: 20_000 }).toBe(owed);
  // …then settled, then paid from the hot wallet on the sandbox chain.
  await expect.poll(() => nano('earn-paid'), { timeout: 60_000 }).toBe(owed);
  expect(await nano('earn-pending')).toBe(0n);
  // The status band's total is the same exact amount.
  await expect(page.getByTestId('earned')).toHaveAttribute('data-nano', owed.toString());
  await expect(page.getByTestId('earn-tx').first()).toHaveAttribute('data-hash', /^[0-9a-f]{64}$/);
  await stopContributing(page);
});

test('nothing leaves for another host before the first click; TON Connect loads on it, in the page’s language, and closing its window leaves Connect usable', async ({
  page,
}) => {
  const seen: string[] = [];
  page.on('request', (request) => seen.push(request.url()));
  const local = remoteWallet('local-bridge', 'Local Bridge Wallet', `${appUrl()}/bridge`);
  await page.addInitScript(() => localStorage.setItem('spinneret.lang', 'ru'));
  await openWithList(page, [local]);
  await page.waitForTimeout(3000);
  const beforeClick = seen.splice(0);
  expect(
    beforeClick.filter(
      (u) => !u.startsWith(appUrl()) && !u.startsWith(coordinatorUrl()) && !u.startsWith(process.env['SPINNERET_MODELHOST_URL'] ?? '-'),
    ),
  ).toEqual([]);
  // Neither TON Connect nor the wallets list came before the click.
  expect(beforeClick.filter((u) => /listed-wallets|tonconnect|\/(lib|dist|buffer)-/.test(new URL(u).pathname))).toEqual([]);

  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-phase', 'choosing');
  expect(seen.some((u) => u.includes('listed-wallets.json'))).toBe(true);
  const modal = page.locator('[data-tc-modal="true"]');
  await expect(modal).toBeVisible();
  // TON Connect's own words, in Russian on a Russian page.
  await expect(modal).toContainText(/[А-Яа-яЁё]{4}/);
  await expect(page.getByTestId('wallet-connect')).toBeDisabled();
  await page.keyboard.press('Escape');
  await expect(modal).toBeHidden();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-phase', 'none');
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
  // And it opens again.
  await page.getByTestId('wallet-connect').click();
  await expect(modal).toBeVisible();
});

test('every wallet offered can reach its bridge under the CSP; a wallet whose bridge is not admitted is not offered', async ({ page }) => {
  const csp = (await fetch(appUrl())).headers.get('content-security-policy') ?? '';
  const connectSrc =
    csp
      .split('; ')
      .find((d) => d.startsWith('connect-src '))
      ?.split(' ')
      .slice(1) ?? [];
  const list = [
    remoteWallet('telegram-wallet', 'Wallet', 'https://walletbot.me/tonconnect-bridge/bridge'),
    ...TON_CONNECT_BRIDGES.map((origin, i) => remoteWallet(`listed-${i}`, `Listed ${i}`, `${origin}/bridge`)),
    remoteWallet('stranger', 'Stranger Wallet', 'https://bridge.stranger.example/bridge'),
  ];
  await openWithList(page, list);
  await page.getByTestId('wallet-connect').click();
  const slot = page.getByTestId('wallet');
  await expect(slot).toHaveAttribute('data-phase', 'choosing');
  const offered = ((await slot.getAttribute('data-offered')) ?? '').split(' ');
  expect(offered).toContain('telegram-wallet');
  expect(offered).not.toContain('stranger');
  expect(await slot.getAttribute('data-left-out')).toBe('stranger');
  // Checked against the CSP the server sent, not the page's own list: each offered wallet's bridge is admitted.
  for (const name of offered) {
    const entry = list.find((w) => w.app_name === name);
    expect(connectSrc, name).toContain(new URL(entry?.bridge[0]?.url ?? '').origin);
  }
  await expect(page.locator('[data-tc-modal="true"]')).toContainText('Wallet');
  await page.keyboard.press('Escape');
});

test('a wallets list that cannot load is said in words, and Connect stays usable', async ({ page, context }) => {
  await page.route('**/listed-wallets.json', (route) => route.abort('internetdisconnected'));
  await page.goto(`${appUrl()}/?wallets=${encodeURIComponent('/listed-wallets.json')}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await page.getByTestId('wallet-connect').click();
  const error = page.getByTestId('wallet-error');
  await expect(error).toHaveAttribute('data-reason', 'list-unreachable');
  await expect(error).toContainText('The wallet list could not be loaded');
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();

  await context.setOffline(true);
  await page.getByTestId('wallet-connect').click();
  await expect(error).toHaveAttribute('data-reason', 'list-offline');
  await expect(error).toContainText('You are offline');
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
  await context.setOffline(false);
});
