/**
 * The app server's Content Security Policy and security headers, in Chromium on the real built
 * app: the document and every worker script it starts carry them, the page is cross-origin
 * isolated, and nothing the dashboard does while it loads, contributes and runs a requester's
 * job breaks the policy (no `securitypolicyviolation` event in the page, no CSP issue reported
 * by the browser for the page or its workers, no "Refused to" console line).
 */
import type { CDPSession, Page, Response } from '@playwright/test';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, openSections, startContributing, stopContributing, test } from './fixtures.ts';
import { coordinatorUrl } from './wallet-helpers.ts';

/** The headers every answer of the app server carries, as the browser saw them. */
const SECURITY_HEADERS: Record<string, RegExp> = {
  'cross-origin-embedder-policy': /^require-corp$/,
  'cross-origin-opener-policy': /^same-origin$/,
  'cross-origin-resource-policy': /^same-origin$/,
  'x-content-type-options': /^nosniff$/,
  'x-frame-options': /^DENY$/,
  'referrer-policy': /^no-referrer$/,
};

function checkHeaders(what: string, headers: Record<string, string>, origin: string): void {
  const csp = headers['content-security-policy'] ?? '';
  expect(csp, `${what}: content-security-policy`).toContain("default-src 'self'");
  expect(csp, what).toContain("script-src 'self' 'wasm-unsafe-eval'");
  expect(csp, what).toContain("worker-src 'self' blob:");
  expect(csp, what).toContain("object-src 'none'");
  expect(csp, what).toContain("frame-ancestors 'none'");
  expect(csp, what).toContain(origin);
  expect(csp, what).not.toMatch(/'unsafe-eval'|script-src[^;]*'unsafe-inline'/);
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(headers[name], `${what}: ${name}`).toMatch(value);
}

/** CSP violations from three places: the page's events, the browser's issues (workers too), console lines. */
async function watchViolations(page: Page): Promise<{ list: () => Promise<string[]>; cdp: CDPSession }> {
  const seen: string[] = [];
  await page.addInitScript(() => {
    const events: string[] = [];
    (window as unknown as { cspEvents: string[] }).cspEvents = events;
    window.addEventListener('securitypolicyviolation', (e: SecurityPolicyViolationEvent) =>
      events.push(`event: ${e.effectiveDirective} ${e.blockedURI}`),
    );
  });
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Audits.issueAdded', ({ issue }) => {
    if (issue.code === 'ContentSecurityPolicyIssue') seen.push(`issue: ${JSON.stringify(issue.details.contentSecurityPolicyIssueDetails)}`);
  });
  await cdp.send('Audits.enable');
  const onConsole = (text: string): void => {
    if (/Content Security Policy|Refused to (load|connect|execute|create|evaluate|apply)/i.test(text)) seen.push(`console: ${text}`);
  };
  page.on('console', (msg) => onConsole(msg.text()));
  page.on('worker', (worker) => worker.on('console', (msg) => onConsole(msg.text())));
  return {
    cdp,
    list: async () => [
      ...seen,
      ...(await page.evaluate(() => (window as unknown as { cspEvents?: string[] }).cspEvents ?? []).catch(() => ['page gone'])),
    ],
  };
}

test('the document and its workers carry the CSP and security headers, and loading and running a job breaks none of it', async ({
  page,
}) => {
  test.setTimeout(300_000);
  const violations = await watchViolations(page);
  const responses: Response[] = [];
  page.on('response', (r) => responses.push(r));
  const workers: string[] = [];
  page.on('worker', (w) => workers.push(w.url()));

  const document = await page.goto(appUrl());
  if (document === null) throw new Error('no response for the document');
  expect(document.status()).toBe(200);
  const coordinator = new URL(coordinatorUrl()).origin;
  checkHeaders('the document', await document.allHeaders(), coordinator);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await openSections(page);
  expect(await page.evaluate(() => window.crossOriginIsolated)).toBe(true);

  // Contribute (unpaid) and run a requester's job through this tab.
  await startContributing(page);
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/, { timeout: 120_000 });
  const requester = new RequesterClient({ coordinatorUrl: coordinatorUrl(), apiKey: process.env['SPINNERET_E2E_API_KEY'] ?? '' });
  const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: ['a job under the content security policy'] });
  expect(result.kind).toBe('embed');
  await expect(page.getByTestId('contrib-counts')).toHaveAttribute('data-done', /^[1-9]/);
  await stopContributing(page);

  // Every worker script of this origin came with the same headers (blob: workers inherit the document's policy).
  const own = workers.filter((url) => url.startsWith(appUrl()));
  expect(own.length, `workers: ${workers.join(', ')}`).toBeGreaterThan(0);
  for (const url of own) {
    const seen = responses.find((r) => r.url() === url);
    const headers = seen !== undefined ? await seen.allHeaders() : Object.fromEntries((await fetch(url)).headers);
    checkHeaders(`worker ${new URL(url).pathname}`, headers, coordinator);
  }
  // Every script and module the app loaded from its own origin, too.
  const scripts = responses.filter((r) => r.url().startsWith(appUrl()) && /\.(js|mjs)(\?|$)/.test(r.url()) && r.status() === 200);
  expect(scripts.length).toBeGreaterThan(0);
  for (const r of scripts) checkHeaders(new URL(r.url()).pathname, await r.allHeaders(), coordinator);

  expect(await violations.list()).toEqual([]);
  await violations.cdp.detach();
});
