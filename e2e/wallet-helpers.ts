/**
 * The test wallet the browser tests connect with: TON Connect's injected bridge
 * (`window[key].tonconnect`) in the page, answering `connect` with a real v4R2 address and a
 * real `ton_proof` signed in Node. Shared by the wallet and dashboard tests.
 */
import type { Page } from '@playwright/test';
import { price } from '../coordinator/ledger/prices.ts';
import { testWallet, type TestWallet } from '../coordinator/wallets/test-wallet.ts';
import { embedTokenizer } from '../modelhost/reference.ts';
import { appUrl, expect } from './fixtures.ts';

const KEY = 'spinneretTestWallet';
export const wallet = testWallet();

export const coordinatorUrl = (): string => {
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

/**
 * Opens the app with the test wallet as the only one listed; `signDomain` overrides the domain
 * the wallet signs for; `who`, the wallet (each test that earns uses its own, as balances add
 * up per wallet). Requests that leave the machine are added to `outside`.
 */
export async function openWithWallet(
  page: Page,
  outside: string[],
  signDomain?: string,
  who: TestWallet = wallet,
  /** The page to open: the dashboard, or `/fleet.html`. */
  path = '/',
): Promise<void> {
  await page.exposeFunction('__walletConnectItems', (host: string, payload: string | null) => {
    const items: Record<string, unknown>[] = [
      { name: 'ton_addr', address: who.address, network: '-3', publicKey: who.publicKey, walletStateInit: who.stateInit },
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
          signature: who.signProof(domain, timestamp, payload),
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
  await page.goto(`${appUrl()}${path}?wallets=${encodeURIComponent('/test-wallets.json')}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await expect(page.getByTestId('wallet-connect')).toBeEnabled();
}

/** A balance row of the Earnings card (`earn-pending`, `earn-settled`, …), nanoTON. */
export async function nanoOf(page: Page, testId: string): Promise<bigint> {
  return BigInt((await page.getByTestId(testId).getAttribute('data-nano')) ?? '0');
}

/** What the price list owes a contributor for embedding `texts` with `model`, computed from the tokens here, independently of the ledger. */
export function owedForEmbeddings(model: string, texts: string[]): bigint {
  return texts
    .map((text) => price(model, { promptTokens: embedTokenizer().encode(text).ids.length, completionTokens: 0 }).contributorShare)
    .reduce((a, b) => a + b, 0n);
}
