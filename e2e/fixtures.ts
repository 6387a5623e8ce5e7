/** Fixtures for the browser tests: the app page, its worker API, and console errors collected. */
import { test as base, expect, type Page } from '@playwright/test';
import type { JobRequest } from '../protocol/jobs.ts';
import type { RunOutcome } from '../worker/runtime.ts';

export interface JobError {
  code: string;
  name: string;
  message: string;
  /** `instanceof SpinneretError` held in the page after the error crossed from the worker. */
  typed: boolean;
}

export type JobAnswer = { ok: true; outcome: RunOutcome; chunks: string[] } | { ok: false; error: JobError };

/** Console errors that are expected: onnxruntime-web logs node-assignment notes as errors. */
const ALLOWED_CONSOLE = [
  /VerifyEachNodeIsAssignedToAnEp/,
  /Some nodes were not assigned to the preferred execution providers/,
  /Rerunning with verbose output/,
];

export const appUrl = (): string => {
  const url = process.env['SPINNERET_APP_URL'];
  if (url === undefined) throw new Error('SPINNERET_APP_URL is not set: run through playwright.config.ts');
  return url;
};

export const manifestUrl = (): string => process.env['SPINNERET_MANIFEST_URL'] ?? '';
export const modelHostUrl = (): string => process.env['SPINNERET_MODELHOST_URL'] ?? '';
/** The host with web-llm fixtures and switchable corruption. */
export const fixturesUrl = (): string => process.env['SPINNERET_FIXTURES_URL'] ?? '';

/** Opens the app on another manifest and waits until it is ready, its sections open. */
export async function openWith(page: Page, manifest: string): Promise<void> {
  await page.goto(`${appUrl()}/?manifest=${encodeURIComponent(manifest)}`);
  await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await openSections(page);
}

/** Opens the dashboard's collapsible sections (settings, activity, device, models, run, about), so that tests can use them. */
export async function openSections(page: Page): Promise<void> {
  await page.evaluate(() => document.querySelectorAll<HTMLDetailsElement>('details.section').forEach((d) => (d.open = true)));
}

/**
 * Starts contributing with the primary button. Without a proven wallet the page asks first:
 * `unpaid` chooses "Run unpaid" (the default), else the test is left at the choice.
 */
export async function startContributing(page: Page, { unpaid = true } = {}): Promise<void> {
  await page.getByTestId('contrib-toggle').click();
  const choice = page.getByTestId('contrib-choice');
  if (unpaid && (await choice.isVisible())) await page.getByTestId('contrib-unpaid').click();
}

/** Stops contributing with the primary button (it reads Stop while contributing). */
export async function stopContributing(page: Page): Promise<void> {
  await expect(page.getByTestId('contrib-toggle')).toHaveAttribute('aria-pressed', 'true');
  await page.getByTestId('contrib-toggle').click();
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', 'idle');
}

/** Loads a model through the worker and returns the typed error, or null when it loaded. */
export async function loadError(page: Page, modelId: string): Promise<JobError | null> {
  return page.evaluate(async (id) => {
    const s = window.spinneret;
    if (s === undefined) throw new Error('window.spinneret is missing');
    try {
      await s.bridge.api.load(id);
      return null;
    } catch (e) {
      const err = e as { code?: string; name?: string; message?: string };
      return { code: err.code ?? '', name: err.name ?? '', message: err.message ?? String(e), typed: e instanceof s.SpinneretError };
    }
  }, modelId);
}

export const test = base.extend<{ app: Page; consoleErrors: string[] }>({
  // Playwright reads a fixture's dependencies from its first parameter's pattern; this one has none.
  // eslint-disable-next-line no-empty-pattern
  consoleErrors: async ({}, use) => {
    await use([]);
  },
  app: async ({ page, consoleErrors }, use) => {
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !ALLOWED_CONSOLE.some((re) => re.test(msg.text()))) consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
    await page.goto(appUrl());
    await expect(page.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
    // The sections (settings, device, models…) open, as tests reach into them; they are remembered per browser context.
    await openSections(page);
    await use(page);
  },
});

export { expect };

/**
 * Runs a job through the page's worker (comlink, runtime, engine) and returns the outcome or
 * the typed error as the page saw it. `worker: 'wasm'` uses a second worker forced to WASM.
 */
export async function runJob(page: Page, job: JobRequest, options: { worker?: 'main' | 'wasm' } = {}): Promise<JobAnswer> {
  return page.evaluate(
    async ({ job, which }) => {
      const s = window.spinneret;
      if (s === undefined) throw new Error('window.spinneret is missing');
      const w = window as unknown as { __wasmBridge?: typeof s.bridge };
      let bridge = s.bridge;
      if (which === 'wasm') {
        if (w.__wasmBridge === undefined) {
          w.__wasmBridge = s.startWorker();
          await w.__wasmBridge.api.init({ manifestUrl: s.manifestUrl, backend: 'wasm' });
        }
        bridge = w.__wasmBridge;
      }
      const chunks: string[] = [];
      try {
        const outcome = await bridge.api.run(
          job,
          s.proxy((c: { text: string }) => chunks.push(c.text)),
        );
        return { ok: true as const, outcome, chunks };
      } catch (e) {
        const err = e as { code?: string; name?: string; message?: string };
        return {
          ok: false as const,
          error: { code: err.code ?? '', name: err.name ?? '', message: err.message ?? String(e), typed: e instanceof s.SpinneretError },
        };
      }
    },
    { job, which: options.worker ?? 'main' },
  );
}
