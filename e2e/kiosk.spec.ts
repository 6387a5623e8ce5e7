/**
 * Kiosk and lab fleets in real Chromium: the owner proves a wallet on the fleet page (a test
 * wallet injected into the page, its proof signed in Node) and issues an enrollment token; a
 * machine opened at the kiosk address shows what will run for which wallet and starts only after
 * one click on "Start contributing for this owner" (remembered: a reload starts with no click),
 * runs a job for the owner's wallet, shows on the fleet page, and obeys the owner's remote pause,
 * resume and message. A managed /kiosk.json on the machine's origin pre-consents. Bad kiosk
 * settings and a revoked token are told in words.
 */
import type { Page } from '@playwright/test';
import { ownerCall, proveOwner } from '../coordinator/fleet/testing.ts';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, test } from './fixtures.ts';
import { coordinatorUrl, openWithWallet } from './wallet-helpers.ts';

const owner = testWallet('kiosk fleet owner');
const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

const requester = (): RequesterClient =>
  new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey: process.env['SPINNERET_E2E_API_KEY'] ?? '' });

async function openKiosk(page: Page, address: string): Promise<void> {
  await page.goto(address);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
}

test('a kiosk machine enrolls from its address after one consent click, earns for the owner, and obeys the fleet page', async ({
  browser,
}) => {
  const fleet = await (await browser.newContext()).newPage();
  await openWithWallet(fleet, outside, undefined, owner, '/fleet.html');
  await fleet.getByTestId('wallet-connect').click();
  await expect(fleet.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await fleet.getByTestId('fleet-token-label').fill('Lab 3');
  await fleet.getByTestId('fleet-token-issue').click();
  const address = (await fleet.getByTestId('fleet-kiosk-url').getAttribute('href')) ?? '';
  expect(new URL(address).searchParams.get('kiosk')).toBe('1');
  await expect(fleet.getByTestId('fleet-token')).toHaveAttribute('data-state', 'active');

  // The machine: the address alone runs nothing; it says for whom and what, and waits for one click.
  const kiosk = await (await browser.newContext()).newPage();
  await openKiosk(kiosk, address);
  const view = kiosk.getByTestId('kiosk-view');
  await expect(view).toHaveAttribute('data-consent', 'asked');
  await expect(kiosk.getByTestId('kiosk-consent-wallet')).toHaveText(owner.address);
  await expect(kiosk.getByTestId('kiosk-consent')).toContainText('runs AI jobs');
  await kiosk.waitForTimeout(2_000);
  // Not started: the worker has no contributor yet (null) or an idle one.
  expect([null, 'idle']).toContain(
    await kiosk.evaluate(async () => (await window.spinneret?.bridge.api.contributorStatus())?.state ?? null),
  );
  await kiosk.getByTestId('kiosk-consent-start').click();
  // Nothing is clicked on the machine from here on.
  await expect(view).toHaveAttribute('data-consent', 'given');
  await expect(view).toHaveAttribute('data-enrolled', 'true');
  await expect(kiosk.getByTestId('kiosk-label')).toHaveText('Lab 3');
  await expect(view).toHaveAttribute('data-state', /connected|working/);
  await expect(kiosk.getByTestId('kiosk-wake')).toHaveAttribute('data-wake', /held|denied|unsupported/);
  await expect(kiosk.getByTestId('kiosk-wake')).not.toBeEmpty();

  // A cold model load on SwiftShader can outlast a lease on a busy machine: load it before the job.
  await kiosk.evaluate(async () => {
    await window.spinneret?.bridge.api.load('tiny-embed');
  });
  const first = await requester()
    .run({ kind: 'embed', model: 'tiny-embed', inputs: ['a job for the lab'] })
    .catch(async (err: unknown) => {
      const seen = [await kiosk.getByTestId('kiosk-state').textContent(), await kiosk.getByTestId('kiosk-counts').textContent()];
      throw new Error(`${String(err)}; the kiosk says: ${seen.join(' | ')}`);
    });
  expect(first.kind).toBe('embed');
  await expect(kiosk.getByTestId('kiosk-counts')).toHaveAttribute('data-done', '1');
  const contributorId = /device (\S+)/.exec((await kiosk.getByTestId('kiosk-counts').textContent()) ?? '')?.[1] ?? '';
  const record = (await (await fetch(`${coordinatorUrl()}/v1/contributors/${contributorId}`)).json()) as { wallet: string | null };
  expect(record.wallet).toBe(owner.address);

  // The owner's fleet page lists it, with its job and its earnings.
  const row = fleet.locator(`[data-testid="fleet-device"][data-id="${contributorId}"]`);
  await expect(row).toHaveAttribute('data-jobs', '1', { timeout: 20_000 });
  await expect(row).toHaveAttribute('data-connected', 'true');
  await expect(row.getByTestId('fleet-device-label')).toHaveText('Lab 3');
  await expect.poll(async () => BigInt((await row.locator('[data-nano]').first().getAttribute('data-nano')) ?? '0') > 0n).toBe(true);

  // Remote pause: the machine says so, the fleet page shows it, and no job is leased to it.
  await row.getByTestId('fleet-pause').click();
  await expect(view).toHaveAttribute('data-paused-by', 'remote');
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Paused by the owner.');
  await expect(row).toHaveAttribute('data-paused-by', 'remote');
  await expect(row.getByTestId('fleet-device-state')).toHaveText('Paused by you');
  const waiting = requester().run({ kind: 'embed', model: 'tiny-embed', inputs: ['waits for the resume'] });
  await kiosk.waitForTimeout(5_000);
  await expect(kiosk.getByTestId('kiosk-counts')).toHaveAttribute('data-done', '1');

  // A reload resumes by itself (the consent is remembered on this device), still paused by the owner.
  await openKiosk(kiosk, address);
  await expect(view).toHaveAttribute('data-consent', 'remembered');
  await expect(view).toHaveAttribute('data-paused-by', 'remote');
  await expect(kiosk.getByTestId('kiosk-counts')).toHaveAttribute('data-done', '0');

  await row.getByTestId('fleet-message-text').fill('Lab closes at 18:00');
  await row.getByTestId('fleet-message-send').click();
  await expect(kiosk.getByTestId('kiosk-message')).toHaveText('Message from the owner: Lab closes at 18:00');

  await fleet.locator(`[data-testid="fleet-device"][data-id="${contributorId}"]`).getByTestId('fleet-resume').click();
  expect((await waiting).kind).toBe('embed');
  await expect(kiosk.getByTestId('kiosk-counts')).toHaveAttribute('data-done', '1');
  await expect(view).toHaveAttribute('data-paused-by', '');

  // Sign out on the fleet page: the owner session is revoked on the coordinator, not only forgotten here.
  const ownerSession =
    (await fleet.evaluate(() => JSON.parse(localStorage.getItem('spinneret.wallet.owner') ?? '{}') as { token?: string })).token ?? '';
  expect((await ownerCall(coordinatorUrl(), ownerSession, 'GET', '/v1/fleet')).status).toBe(200);
  await fleet.getByTestId('fleet-sign-out').click();
  await expect(fleet.getByTestId('fleet-connect')).toBeVisible();
  await expect(fleet.getByTestId('fleet-sign-out')).toBeHidden();
  await expect.poll(async () => (await ownerCall(coordinatorUrl(), ownerSession, 'GET', '/v1/fleet')).status).toBe(401);
  await fleet.context().close();
  await kiosk.context().close();
});

test('bad kiosk settings and a revoked token are told in words, with what to do', async ({ page }) => {
  await openKiosk(page, `${appUrl()}/?kiosk=1&enroll=short`);
  const error = page.getByTestId('kiosk-error');
  await expect(error).toHaveAttribute('data-reason', 'config-malformed');
  await expect(error).toContainText('The kiosk settings are not valid.');
  await expect(error).toContainText('too short');

  // A served /kiosk.json with a field it does not know.
  await page.route('**/kiosk.json', (route) => route.fulfill({ json: { enroll: 'A'.repeat(43), wakeLock: 'always' } }));
  await openKiosk(page, `${appUrl()}/?kiosk=1`);
  await expect(error).toHaveAttribute('data-reason', 'config-malformed');
  await expect(error).toContainText('wakeLock');

  const session = await proveOwner(coordinatorUrl(), owner, Date.now());
  const issued = await ownerCall(coordinatorUrl(), session, 'POST', '/v1/enrollment-tokens', { label: 'Old lab', ttlMs: 3_600_000 });
  const token = (await issued.json()) as { id: string; secret: string };
  await ownerCall(coordinatorUrl(), session, 'DELETE', `/v1/enrollment-tokens/${token.id}`);
  await openKiosk(page, `${appUrl()}/?kiosk=1&enroll=${token.secret}&label=PC-9`);
  await expect(error).toHaveAttribute('data-reason', 'token-revoked');
  await expect(error).toContainText('The owner revoked this enrollment token. Ask the owner for a new kiosk address');
});

test("the owner's managed /kiosk.json on the machine pre-consents: it starts with no click", async ({ page }) => {
  const session = await proveOwner(coordinatorUrl(), owner, Date.now());
  const issued = await ownerCall(coordinatorUrl(), session, 'POST', '/v1/enrollment-tokens', { label: 'Managed', ttlMs: 3_600_000 });
  const token = (await issued.json()) as { id: string; secret: string };
  await page.route('**/kiosk.json', (route) => route.fulfill({ json: { enroll: token.secret, label: 'Managed PC' } }));
  await openKiosk(page, `${appUrl()}/?kiosk=1`);
  const view = page.getByTestId('kiosk-view');
  await expect(view).toHaveAttribute('data-consent', 'managed');
  await expect(page.getByTestId('kiosk-consent')).toHaveCount(0);
  await expect(view).toHaveAttribute('data-state', /connected|working/);
  await ownerCall(coordinatorUrl(), session, 'DELETE', `/v1/enrollment-tokens/${token.id}`);
});
