/** Every language has exactly the English keys and placeholders, and every key the page uses exists. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { catalogKeys, LANGUAGES, setLanguage, t } from './index.ts';

const WEB = new URL('..', import.meta.url).pathname;

/** The page's source files: `web/**.ts` without tests and declarations. */
function sources(dir = WEB): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.ts$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name) ? [path] : [];
  });
}

const english = new Set(catalogKeys().en);
const areas = new Set([...english].map((key) => key.split('.')[0]));

/** Keys in `t('…')`, `tr('…')`, `trAttr(el, 'attr', '…')`, and any quoted literal that starts with a catalog's area. */
function usedKeys(code: string): { keys: string[]; dynamic: string[] } {
  // Comments may show example keys.
  const source = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const keys = new Set<string>();
  for (const m of source.matchAll(/\b(?:t|tr|say)\(\s*'([^']+)'/g)) keys.add(m[1]!);
  for (const m of source.matchAll(/\btrAttr\([^,]+,\s*'[^']+',\s*'([^']+)'/g)) keys.add(m[1]!);
  for (const m of source.matchAll(/'([a-z]+)\.([A-Za-z0-9]+)'/g)) if (areas.has(m[1]!)) keys.add(`${m[1]}.${m[2]}`);
  // A key built at run time (`controls.kind_${kind}`) is checked by its fixed start.
  const dynamic = [...source.matchAll(/\b(?:t|tr|say)\(\s*`([^`$]*)\$\{/g)].map((m) => m[1]!);
  return { keys: [...keys], dynamic };
}

const params = (text: string): string[] => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();

describe('catalogs', () => {
  it('every language has exactly the English keys', () => {
    const all = catalogKeys();
    expect(all.en.length).toBeGreaterThan(100);
    for (const lang of LANGUAGES) expect([...all[lang]].sort(), lang).toEqual([...all.en].sort());
  });

  it('every translation names the same parameters as the English text, and differs from it', () => {
    const texts = (lang: (typeof LANGUAGES)[number]): Map<string, string> => {
      setLanguage(lang, { save: false });
      return new Map([...english].map((key) => [key, t(key)]));
    };
    const en = texts('en');
    for (const lang of LANGUAGES.filter((l) => l !== 'en')) {
      const other = texts(lang);
      for (const [key, text] of en) expect(params(other.get(key) ?? ''), `${lang} ${key}`).toEqual(params(text));
      // Most texts must really be translated (names, units and sample input may stay).
      const same = [...en].filter(([key, text]) => other.get(key) === text).map(([key]) => key);
      expect(same.length, `${lang}: untranslated ${same.join(', ')}`).toBeLessThan(12);
    }
    setLanguage('en', { save: false });
  });

  it('every key used in web/**/*.ts exists, and every key built at run time has keys that start like it', () => {
    const files = sources();
    expect(files.some((f) => f.endsWith('probe-page.ts'))).toBe(true);
    const missing: string[] = [];
    const dynamic: string[] = [];
    let used = 0;
    for (const file of files) {
      const found = usedKeys(readFileSync(file, 'utf8'));
      used += found.keys.length;
      for (const key of found.keys) if (!english.has(key)) missing.push(`${file.slice(WEB.length)}: ${key}`);
      for (const start of found.dynamic)
        if (![...english].some((key) => key.startsWith(start) && key.length > start.length))
          dynamic.push(`${file.slice(WEB.length)}: ${start}…`);
    }
    expect(used).toBeGreaterThan(100);
    expect(missing).toEqual([]);
    expect(dynamic).toEqual([]);
  });
});
