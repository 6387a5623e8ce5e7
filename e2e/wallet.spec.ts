/**
 * Connecting a TON wallet: a test wallet injected into the page (TON Connect's injected
 * bridge, `window[key].tonconnect`) answers `connect` with a real v4R2 address and a real
 * `ton_proof` signed in Node; the coordinator checks the proof, the worker's hello carries
 * the session, and the coordinator records the wallet for that contributor.
 */
import { RequesterClient } from '../requester/client.ts';
import { expect, test } from './fixtures.ts';
import { coordinatorUrl, nanoOf, openWithWallet, owedForEmbeddings, wallet } from './wallet-helpers.ts';

const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

test('a proven wallet is shown, and the coordinator credits the contributor whose hello carries its session', async ({ page }) => {
  await openWithWallet(page, outside);
  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await expect(page.getByTestId('wallet-address')).toHaveText(wallet.friendlyTestnet);
  await expect(page.getByTestId('wallet-network')).toHaveText('testnet');
  await expect(page.getByTestId('wallet-error')).toBeEmpty();

  await page.getByTestId('contrib-start').click();
  await expect(page.getByTestId('contrib-state')).toContainText(/Connected|Working/);
  const counts = (await page.getByTestId('contrib-counts').textContent()) ?? '';
  const contributorId = /device (\S+)/.exec(counts)?.[1];
  expect(contributorId).toBeDefined();
  const view = (await (await fetch(`${coordinatorUrl()}/v1/contributors/${contributorId ?? ''}`)).json()) as { wallet: string | null };
  expect(view.wallet).toBe(wallet.address);
  await page.getByTestId('contrib-stop').click();

  await page.getByTestId('wallet-disconnect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'disconnected');
});

test('a proof signed for another site is refused with a clear error and the wallet is dropped', async ({ page }) => {
  await openWithWallet(page, outside, 'evil.example');
  await page.getByTestId('wallet-connect').click();
  const error = page.getByTestId('wallet-error');
  await expect(error).toHaveAttribute('data-reason', 'domain-not-allowed');
  await expect(error).toContainText('evil.example');
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'disconnected');
});

test('earnings go from pending to paid on the local TON chain, and the page shows the payout transaction', async ({ page }) => {
  await openWithWallet(page, outside);
  await page.getByTestId('wallet-connect').click();
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'proven');
  await page.getByTestId('contrib-start').click();
  await expect(page.getByTestId('contrib-state')).toContainText(/Connected|Working/);

  const apiKey = process.env['SPINNERET_E2E_API_KEY'] ?? '';
  const client = new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey });
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
  await expect(page.getByTestId('earn-tx').first()).toHaveText(/^[0-9a-f]{64}$/);
  await page.getByTestId('contrib-stop').click();
});
