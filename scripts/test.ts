/**
 * `npm test`: formatting, lint, types, unit tests (Node), the production build, its size
 * budget (scripts/budget.ts), and the browser tests (Playwright + Debian's Chromium with real
 * WebGPU on SwiftShader). Ends with one line: `N passed, N failed`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { ensureChromium, ensureFonts } from './chromium.ts';

const bin = (name: string): string => `node_modules/.bin/${name}`;
const failures: string[] = [];

function step(title: string, command: string, args: string[]): boolean {
  console.log(`\n=== ${title}: ${command.replace('node_modules/.bin/', '')} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, FORCE_COLOR: '0' } });
  const ok = result.status === 0;
  if (!ok) failures.push(title);
  return ok;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return null;
  }
}

function unitCounts(): { passed: number; failed: number } {
  const data = readJson('.cache/results/unit.json') as { numPassedTests?: number; numFailedTests?: number } | null;
  return { passed: data?.numPassedTests ?? 0, failed: data?.numFailedTests ?? 0 };
}

function e2eCounts(): { passed: number; failed: number } {
  const data = readJson('.cache/results/e2e.json') as { stats?: { expected?: number; unexpected?: number; flaky?: number } } | null;
  return { passed: data?.stats?.expected ?? 0, failed: (data?.stats?.unexpected ?? 0) + (data?.stats?.flaky ?? 0) };
}

ensureChromium();
ensureFonts();
mkdirSync('.cache/results', { recursive: true });
rmSync('.cache/results/unit.json', { force: true });
rmSync('.cache/results/e2e.json', { force: true });
step('format', bin('prettier'), ['--check', '.', '--log-level', 'warn']);
step('lint', bin('eslint'), ['.']);
step('types', bin('tsc'), ['-b']);
step('unit', bin('vitest'), ['run', '--reporter=default', '--reporter=json', '--outputFile.json=.cache/results/unit.json']);
const built = step('build', bin('vite'), ['build', '--logLevel', 'warn']);
if (built) step('size budget', bin('tsx'), ['scripts/budget.ts']);
if (built) step('e2e', bin('playwright'), ['test']);

const unit = unitCounts();
const e2e = built ? e2eCounts() : { passed: 0, failed: 0 };
console.log(`\nunit: ${unit.passed} passed, ${unit.failed} failed; e2e (Chromium, WebGPU): ${e2e.passed} passed, ${e2e.failed} failed`);
if (failures.length > 0) console.log(`failed steps: ${failures.join(', ')}`);
const failed = unit.failed + e2e.failed + (failures.length > 0 && unit.failed + e2e.failed === 0 ? failures.length : 0);
console.log(`${unit.passed + e2e.passed} passed, ${failed} failed`);
process.exit(failures.length > 0 ? 1 : 0);
