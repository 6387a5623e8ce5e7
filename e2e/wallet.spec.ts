/**
 * Connecting a TON wallet: a test wallet injected into the page (TON Connect's injected
 * bridge, `window[key].tonconnect`) answers `connect` with a real v4R2 address and a real
 * `ton_proof` signed in Node; the coordinator checks the proof, the worker's hello carries
 * the session, and the coordinator records the wallet for that contributor.
 */
import type { Page } from '@playwright/test';
import { testWallet } from '../coordinator/wallets/test-wallet.ts';
import { price } from '../coordinator/ledger/prices.ts';
import { embedTokenizer } from '../modelhost/reference.ts';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, test } from './fixtures.ts';

const KEY = 'spinneretTestWallet';
const wallet = testWallet();
const outside: string[] = [];
test.afterEach(() => expect(outside.splice(0)).toEqual([]));

const coordinatorUrl = (): string => {
  const url = process.env['SPINNERET_COORDINATOR_URL'];
  if (url === undefined) throw new Error('SPINNERET_COORDINATOR_URL is not set: run through playwright.config.ts');
  return url;
};

/** The page-side wallet: the injected-bridge protocol, with signing done in Node by `__walletConnectItems`. */
function injectWallet(key: string): void {
  type Item = Record<string, unknown>;
  const w = window as unknown as Record<string, unknown> & {
    __walletConnectItems: (host: string, payload: string | null) => Promise<Item[]>;
  };
  const flag = `${key}.connected`;
  const deviceInfo = {
    platform: 'browser',
    appName: key,
    appVersion: '1.0.0',
    maxProtocolVersion: 2,
    features: ['SendTransaction', { name: 'SendTransaction', maxMessages: 4 }],
  };
  let nextId = 0;
  const connectEvent = async (payload: string | null): Promise<unknown> => ({
    event: 'connect',
    id: nextId++,
    payload: { items: await w.__walletConnectItems(location.host, payload), device: deviceInfo },
  });
  w[key] = {
    tonconnect: {
      deviceInfo,
      walletInfo: {
        name: 'Spinneret Test Wallet',
        app_name: key,
        image: '/icon-180.png',
        about_url: 'https://example.invalid',
        platforms: ['chrome'],
      },
      protocolVersion: 2,
      isWalletBrowser: true,
      async connect(_version: number, request: { items: Array<{ name: string; payload?: string }> }) {
        const proof = request.items.find((item) => item.name === 'ton_proof');
        localStorage.setItem(flag, '1');
        return connectEvent(proof?.payload ?? null);
      },
      async restoreConnection() {
        if (localStorage.getItem(flag) === null)
          return { event: 'connect_error', id: nextId++, payload: { code: 0, message: 'not connected' } };
        return connectEvent(null);
      },
      async send(request: { id: string }) {
        return { id: request.id, error: { code: 400, message: 'The test wallet signs nothing but proofs.' } };
      },
      listen() {
        return () => undefined;
      },
      disconnect() {
        localStorage.removeItem(flag);
      },
    },
  };
}

/** Opens the app with the test wallet as the only one listed; `signDomain` overrides the domain the wallet signs for. */
async function openWithWallet(page: Page, signDomain?: string): Promise<void> {
  await page.exposeFunction('__walletConnectItems', (host: string, payload: string | null) => {
    const items: Record<string, unknown>[] = [
      { name: 'ton_addr', address: wallet.address, network: '-3', publicKey: wallet.publicKey, walletStateInit: wallet.stateInit },
    ];
    if (payload !== null) {
      const domain = signDomain ?? host;
      const timestamp = Math.floor(Date.now() / 1000);
      items.push({
        name: 'ton_proof',
        proof: {
          timestamp,
          domain: { lengthBytes: Buffer.byteLength(domain), value: domain },
          payload,
          signature: wallet.signProof(domain, timestamp, payload),
        },
      });
    }
    return items;
  });
  const list = [
    {
      app_name: KEY,
      name: 'Spinneret Test Wallet',
      image: '/icon-180.png',
      about_url: 'https://example.invalid',
      platforms: ['chrome'],
      bridge: [{ type: 'js', key: KEY }],
    },
  ];
  await page.route('**/test-wallets.json', (route) => route.fulfill({ json: list }));
  // Nothing may leave the machine: no public wallets list, bridge or telemetry.
  page.on('request', (request) => {
    const { protocol, hostname } = new URL(request.url());
    if (protocol.startsWith('http') && hostname !== '127.0.0.1') outside.push(request.url());
  });
  await page.addInitScript(injectWallet, KEY);
  await page.goto(`${appUrl()}/?wallets=${encodeURIComponent('/test-wallets.json')}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
}

test('a proven wallet is shown, and the coordinator credits the contributor whose hello carries its session', async ({ page }) => {
  await openWithWallet(page);
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
  await openWithWallet(page, 'evil.example');
  await page.getByTestId('wallet-connect').click();
  const error = page.getByTestId('wallet-error');
  await expect(error).toHaveAttribute('data-reason', 'domain-not-allowed');
  await expect(error).toContainText('evil.example');
  await expect(page.getByTestId('wallet')).toHaveAttribute('data-state', 'disconnected');
});

test('earnings go from pending to paid on the local TON chain, and the page shows the payout transaction', async ({ page }) => {
  await openWithWallet(page);
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
  const owed = texts
    .map((text) => price('tiny-embed', { promptTokens: embedTokenizer().encode(text).ids.length, completionTokens: 0 }).contributorShare)
    .reduce((a, b) => a + b, 0n);
  expect(owed).toBeGreaterThan(0n);
  const nano = async (id: string): Promise<bigint> => BigInt((await page.getByTestId(id).getAttribute('data-nano')) ?? '0');
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
