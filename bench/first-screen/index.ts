/**
 * The first five minutes, measured in real Chromium against a local network of its own.
 *
 * `first-click`: time to the primary button on a throttled phone profile (390×844, 4× CPU
 * slowdown, Chrome's "Slow 3G": 2 s round trips, 400 kbit/s each way, over the DevTools
 * protocol), as a ratio against the same first visit unthrottled; and every byte the browser
 * received before the first click (as sent, compressed), by kind, beside the build's count
 * (scripts/budget.ts).
 *
 * `earnings`: the dashboard's estimate before Start, against the rate it measures after five
 * minutes of work (BENCH_EARN_MINUTES), on a wallet proven with the test wallet, while an
 * open-loop requester sends a job every 5 s (BENCH_EARN_INTERVAL_MS). First another tab serves
 * the demand for a minute and leaves, so that the network has a history (what its jobs are
 * worth) as a running network does; the estimate then expects to share the demand with it, and
 * the measured tab has it all. SwiftShader and the project's tiny test models: the figure checks
 * the estimator, not a real GPU's earnings.
 */
import { request as httpRequest } from 'node:http';
import { chromium, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { testWallet } from '../../coordinator/wallets/test-wallet.ts';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/chromium.ts';
import { measureFirstLoad } from '../../scripts/budget.ts';
import { openLoopDemand, startLocalNetwork, type LocalNetwork } from './network.ts';

const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`;

/** tsx keeps function names with a `__name` helper that functions handed to the page then call: the page gets a stand-in. */
const KEEP_NAMES = 'globalThis.__name = (f) => f;';

/** The bytes a server sends for `url` to a browser that accepts brotli and gzip (Chrome's Accept-Encoding), body only. */
function sentBytes(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { headers: { 'accept-encoding': 'gzip, deflate, br, zstd' } }, (res) => {
      let n = 0;
      res.on('data', (chunk: Buffer) => (n += chunk.length));
      res.on('end', () => resolve(n));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface FirstVisit {
  /** From navigation start to the primary button drawn and usable, ms. */
  buttonMs: number;
  /** Response bodies as received (compressed), by kind, bytes. */
  bytes: Record<string, number>;
  /** Requests to other hosts than the app, the coordinator and the model host. */
  outside: string[];
}

/** Watches, from the first script, for the primary button; its time is `window.__buttonAt`. */
function watchButton(): void {
  const w = window as unknown as { __buttonAt?: number };
  const check = (): void => {
    const button = document.querySelector('[data-testid="contrib-toggle"]');
    if (w.__buttonAt === undefined && button instanceof HTMLButtonElement && !button.disabled && button.getBoundingClientRect().height > 0)
      w.__buttonAt = performance.now();
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
}

function kindOf(url: string, type: string): string {
  const path = new URL(url).pathname;
  if (/\.wasm$/.test(path)) return 'wasm';
  if (/\.js$/.test(path)) return 'JavaScript';
  if (/\.css$/.test(path)) return 'CSS';
  if (/\.(png|svg)$/.test(path)) return 'images';
  if (type === 'document') return 'HTML';
  return 'data (JSON)';
}

async function firstVisit(browser: Browser, net: LocalNetwork, throttled: boolean): Promise<FirstVisit> {
  const context: BrowserContext = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  await context.addInitScript(KEEP_NAMES);
  const page: Page = await context.newPage();
  const bytes: Record<string, number> = {};
  /** Each URL fetched before the first click (a precache's revision query aside), with its kind. */
  const fetched = new Map<string, string>();
  const outside: string[] = [];
  const hosts = new Set([net.appUrl, net.coordinatorUrl, net.modelHostUrl].map((u) => new URL(u).host));
  let clicked = false;
  // Playwright knows no sizes for the worker's and the service worker's requests: each URL is fetched again from here, as the server sends it.
  context.on('requestfinished', (request) => {
    if (clicked || !request.url().startsWith('http')) return;
    const url = new URL(request.url());
    url.searchParams.delete('__WB_REVISION__');
    if (!fetched.has(url.href)) fetched.set(url.href, kindOf(url.href, request.resourceType()));
  });
  context.on('request', (request) => {
    const { host, protocol } = new URL(request.url());
    if (protocol.startsWith('http') && !hosts.has(host)) outside.push(request.url());
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  if (throttled) {
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    // Chrome DevTools' "Slow 3G": 400 ms × 5 latency, 500 kbit/s × 0.8 each way.
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 2000,
      downloadThroughput: (400 * 1000) / 8,
      uploadThroughput: (400 * 1000) / 8,
    });
  }
  await page.addInitScript(watchButton);
  await page.goto(net.appUrl, { waitUntil: 'commit', timeout: 300_000 });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page
    .waitForFunction(() => (window as unknown as { __buttonAt?: number }).__buttonAt !== undefined, undefined, {
      timeout: throttled ? 300_000 : 60_000,
    })
    .catch(async (err: unknown) => {
      const seen = await page
        .evaluate(() => ({ ready: document.getElementById('app')?.dataset['ready'], body: document.body?.innerText.slice(0, 300) }))
        .catch(() => null);
      throw new Error(`no primary button (${String(err)}); the page shows ${JSON.stringify(seen)}`);
    });
  const buttonMs = await page.evaluate(() => (window as unknown as { __buttonAt: number }).__buttonAt);
  // Everything before a first click: the page settled (estimate shown) and the network quiet.
  await page.waitForFunction(() => document.querySelector('[data-testid="estimate"]')?.getAttribute('data-nano-mid') != null, undefined, {
    timeout: 600_000,
  });
  await page.waitForLoadState('networkidle', { timeout: 300_000 }).catch(() => undefined);
  await page.waitForTimeout(throttled ? 8000 : 3000);
  clicked = true;
  await context.close();
  for (const [url, kind] of fetched) {
    const n = await sentBytes(url);
    bytes[kind] = (bytes[kind] ?? 0) + n;
    if (process.env['BENCH_VERBOSE'] === '1') console.log(`  ${String(n).padStart(8)} ${url}`);
  }
  return { buttonMs, bytes, outside };
}

export async function runFirstClickBench(): Promise<void> {
  const net = await startLocalNetwork();
  const browser = await chromium.launch({ executablePath: ensureChromium(), args: CHROMIUM_ARGS });
  try {
    const fast = await firstVisit(browser, net, false);
    const slow = await firstVisit(browser, net, true);
    const total = (v: FirstVisit): number => Object.values(v.bytes).reduce((a, b) => a + b, 0);
    console.log(`\nFirst visit, phone profile (390×844), Chromium ${browser.version()}, SwiftShader, this machine`);
    console.log(`time to the primary button, unthrottled (baseline):      ${fast.buttonMs.toFixed(0).padStart(6)} ms`);
    console.log(
      `time to the primary button, 4× CPU and Slow 3G:          ${slow.buttonMs.toFixed(0).padStart(6)} ms  (ratio ${(slow.buttonMs / fast.buttonMs).toFixed(1)})`,
    );
    console.log(`received before the first click (each URL once, bodies as sent, compressed): ${kb(total(fast))}`);
    for (const [kind, n] of Object.entries(fast.bytes).sort((a, b) => b[1] - a[1]))
      console.log(`  ${kind.padEnd(14)} ${kb(n).padStart(9)}`);
    console.log(`the build's count (scripts/budget.ts, gzip -9 each file): ${kb(measureFirstLoad('dist').total)}`);
    console.log(
      `requests to other hosts before the first click: ${fast.outside.length + slow.outside.length}${fast.outside.length > 0 ? ` (${fast.outside.join(', ')})` : ''}`,
    );
  } finally {
    await browser.close();
    await net.close();
  }
}

export async function runEarningsBench(): Promise<void> {
  const minutes = Number(process.env['BENCH_EARN_MINUTES'] ?? 5);
  const intervalMs = Number(process.env['BENCH_EARN_INTERVAL_MS'] ?? 5000);
  const net = await startLocalNetwork();
  process.env['SPINNERET_APP_URL'] = net.appUrl;
  process.env['SPINNERET_COORDINATOR_URL'] = net.coordinatorUrl;
  const { openWithWallet } = await import('../../e2e/wallet-helpers.ts');
  const demand = openLoopDemand(net.client, intervalMs);
  const browser = await chromium.launch({ executablePath: ensureChromium(), args: CHROMIUM_ARGS });
  try {
    // A minute of demand served by another tab first, so the network has a rate and a history to publish.
    const helper = await browser.newContext();
    await helper.addInitScript(KEEP_NAMES);
    const helperPage = await helper.newPage();
    await helperPage.goto(net.appUrl);
    await helperPage.waitForSelector('#app[data-ready="true"]', { timeout: 120_000 });
    await helperPage.getByTestId('contrib-toggle').click();
    await helperPage.getByTestId('contrib-unpaid').click();
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    const helperJobs = await helperPage.evaluate(() => window.spinneret?.bridge.api.contributorStatus().then((s) => s?.jobsDone ?? 0));
    await helper.close();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(KEEP_NAMES);
    const page = await context.newPage();
    await openWithWallet(page, [], undefined, testWallet(`bench earnings ${Date.now()}`));
    const box = page.getByTestId('estimate');
    await page.waitForFunction(() => document.querySelector('[data-testid="estimate"]')?.getAttribute('data-nano-mid') != null, undefined, {
      timeout: 300_000,
    });
    const before = {
      low: BigInt((await box.getAttribute('data-nano-low')) ?? '0'),
      mid: BigInt((await box.getAttribute('data-nano-mid')) ?? '0'),
      high: BigInt((await box.getAttribute('data-nano-high')) ?? '0'),
    };
    const headline = await page.getByTestId('estimate-headline').textContent();
    await page.getByTestId('wallet-connect').click();
    await page.waitForSelector('[data-testid="wallet"][data-state="proven"]');
    await page.getByTestId('contrib-toggle').click();
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, minutes * 60_000));
    const measured = BigInt((await box.getAttribute('data-measured-nano-hour')) ?? '0');
    const done = await page.evaluate(() => window.spinneret?.bridge.api.contributorStatus().then((s) => s?.jobsDone ?? 0));
    const ton = (nano: bigint): string => `${(Number(nano) / 1e9).toFixed(4)} TON/h`;
    console.log(
      `\nEstimate against measured earnings, ${minutes} min of work, Chromium ${browser.version()}, SwiftShader, tiny test models, this machine`,
    );
    console.log(
      `demand: a job every ${intervalMs / 1000} s (open loop); ${demand.sent()} sent; the first tab did ${helperJobs} in its minute, this tab ${done} in ${((Date.now() - started) / 60_000).toFixed(1)} min`,
    );
    console.log(`estimate before Start: ${ton(before.low)} – ${ton(before.high)} (middle ${ton(before.mid)}); headline "${headline}"`);
    console.log(`measured after ${minutes} min (the page's own figure, from its receipts): ${ton(measured)}`);
    if (measured > 0n)
      console.log(
        `estimate ÷ measured: ${(Number(before.mid) / Number(measured)).toFixed(2)} (target within 3×); measured ${measured >= before.low && measured <= before.high ? 'inside' : 'outside'} the range`,
      );
  } finally {
    demand.stop();
    await browser.close();
    await net.close();
  }
}
