/**
 * Renders the app icons (`public/icon-192.png`, `icon-512.png`, `icon-maskable-512.png`) from
 * `public/icon.svg` with the local Chromium, so no image tool or download is needed. The PNGs are
 * committed; run `npx tsx scripts/icons.ts` after changing the SVG.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { chromium } from '@playwright/test';
import { ensureChromium } from './chromium.ts';

const svg = readFileSync('public/icon.svg', 'utf8');
const browser = await chromium.launch({ executablePath: ensureChromium() });
const page = await browser.newPage();

/** `maskable`: the glyph inside the central 80 % safe zone on a full-bleed background, as launchers crop it. */
async function render(size: number, maskable: boolean): Promise<Buffer> {
  await page.setViewportSize({ width: size, height: size });
  const inner = maskable ? Math.round(size * 0.7) : size;
  const background = maskable ? '#0f172a' : 'transparent';
  await page.setContent(
    `<html><body style="margin:0;background:${background};display:grid;place-items:center;width:${size}px;height:${size}px">` +
      `<img src="data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}" width="${inner}" height="${inner}"></body></html>`,
  );
  await page.waitForFunction(() => document.images[0]?.complete === true);
  return page.screenshot({ omitBackground: !maskable, type: 'png' });
}

writeFileSync('public/icon-192.png', await render(192, false));
writeFileSync('public/icon-512.png', await render(512, false));
writeFileSync('public/icon-maskable-512.png', await render(512, true));
await browser.close();
console.log('Wrote public/icon-192.png, icon-512.png, icon-maskable-512.png');
