/**
 * Finds Debian's Chromium for the browser tests, installing it when running as root.
 * Playwright's own browser download is never used: it cannot work on machines that reach
 * only the npm registry and Debian's packages.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function findChromium(): string | null {
  const fromEnv = process.env['CHROMIUM_PATH'];
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** True when fontconfig knows a font with Korean glyphs (the dashboard's screenshots are in Korean too). */
function hasKoreanFont(): boolean {
  const result = spawnSync('fc-list', [':lang=ko', 'family'], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() !== '';
}

/** Installs Debian packages as root; false (after saying why) when that is not possible. */
function aptInstall(packages: string[]): boolean {
  if (process.getuid?.() !== 0) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', ...packages],
  ]) {
    const result = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (result.status !== 0) {
      console.error(`apt-get ${args.join(' ')} failed (exit ${result.status}).`);
      return false;
    }
  }
  return true;
}

/**
 * Korean text renders as empty boxes without a CJK font; the Russian and English ones come
 * with Chromium's dependencies. Installs Debian's fonts-nanum as root, else says how.
 */
export function ensureFonts(): void {
  if (hasKoreanFont()) return;
  console.log('No Korean font found: installing Debian’s fonts-nanum package…');
  if (!aptInstall(['fonts-nanum']) || !hasKoreanFont()) {
    console.error('Korean text in the screenshots will show as boxes; install a Korean font: sudo apt-get install -y fonts-nanum');
  }
}

/** The path to Chromium; installs Debian's package as root, else explains how and exits. */
export function ensureChromium(): string {
  const found = findChromium();
  if (found !== null) return found;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) {
    console.error(
      'No Chromium found. Install Debian\u2019s package and run the tests again:\n' +
        '  sudo apt-get update && sudo apt-get install -y chromium\n' +
        'or point CHROMIUM_PATH at a Chromium or Chrome binary (version 133 or newer).',
    );
    process.exit(1);
  }
  console.log('No Chromium found: installing Debian\u2019s chromium and fonts-nanum packages (about a minute)…');
  if (!aptInstall(['chromium', 'fonts-nanum'])) {
    console.error('Install chromium by hand, then rerun.');
    process.exit(1);
  }
  const installed = findChromium();
  if (installed === null) {
    console.error('apt-get reported success but no chromium binary was found.');
    process.exit(1);
  }
  console.log(execFileSync(installed, ['--version'], { encoding: 'utf8' }).trim());
  return installed;
}

/** Flags for real WebGPU on SwiftShader in headless Chromium on a closed network (see docs/testing.md). */
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
