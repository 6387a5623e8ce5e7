/**
 * Every language has exactly the English keys (counted words: the plural forms the language
 * needs) and placeholders, and every key the page uses exists.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalogKeys, LANGUAGES, loadLanguage, setLanguage, t } from './index.ts';

beforeAll(async () => {
  for (const lang of LANGUAGES) await loadLanguage(lang);
});

const WEB = new URL('..', import.meta.url).pathname;

/** The page's source files: `web/**.ts` without tests and declarations. */
function sources(dir = WEB): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.ts$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name) ? [path] : [];
  });
}

const PLURAL = /_(zero|one|two|few|many|other)$/;
/** A key without its plural form: `earn.tokens_few` → `earn.tokens`. */
const base = (key: string): string => key.replace(PLURAL, '');
const english = new Set(catalogKeys().en.map(base));
const areas = new Set([...english].map((key) => key.split('.')[0]));

/** Keys in `t('…')`, `tr('…')`, `trAttr(el, 'attr', '…')`, and any quoted literal that starts with a catalog's area. */
function usedKeys(code: string): { keys: string[]; dynamic: string[] } {
  // Comments may show example keys.
  const source = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const keys = new Set<string>();
  for (const m of source.matchAll(/\b(?:t|tr|say|tp)\(\s*'([^']+)'/g)) keys.add(m[1]!);
  for (const m of source.matchAll(/\btrAttr\([^,]+,\s*'[^']+',\s*'([^']+)'/g)) keys.add(m[1]!);
  for (const m of source.matchAll(/'([a-z]+)\.([A-Za-z0-9]+)'/g)) if (areas.has(m[1])) keys.add(`${m[1]}.${m[2]}`);
  // A key built at run time (`controls.kind_${kind}`) is checked by its fixed start.
  const dynamic = [...source.matchAll(/\b(?:t|tr|say|tp)\(\s*`([^`$]*)\$\{/g)].map((m) => m[1]!);
  return { keys: [...keys], dynamic };
}

const params = (text: string): string[] => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();

describe('catalogs', () => {
  it('every language has exactly the English keys, and each counted word the plural forms its language needs', async () => {
    const all = catalogKeys();
    expect(all.en.length).toBeGreaterThan(100);
    const bases = (keys: string[]): string[] => [...new Set(keys.map(base))].sort();
    for (const lang of LANGUAGES) {
      expect(bases(all[lang]), lang).toEqual(bases(all.en));
      const forms = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
      for (const counted of new Set(all.en.filter((k) => PLURAL.test(k)).map(base))) {
        const have = all[lang].filter((k) => base(k) === counted).map((k) => k.slice(counted.length + 1));
        expect(have.sort(), `${lang} ${counted}`).toEqual([...forms].sort());
      }
    }
  });

  it('every translation names the same parameters as the English text, and differs from it', async () => {
    const texts = async (lang: (typeof LANGUAGES)[number]): Promise<Map<string, string>> => {
      await setLanguage(lang, { save: false });
      // A counted word is compared by its `other` form.
      return new Map([...english].map((key) => [key, catalogKeys().en.includes(key) ? t(key) : t(`${key}_other`)]));
    };
    const en = await texts('en');
    for (const lang of LANGUAGES.filter((l) => l !== 'en')) {
      const other = await texts(lang);
      for (const [key, text] of en) expect(params(other.get(key) ?? ''), `${lang} ${key}`).toEqual(params(text));
      // Most texts must really be translated (names, units and sample input may stay).
      const same = [...en].filter(([key, text]) => other.get(key) === text).map(([key]) => key);
      expect(same.length, `${lang}: untranslated ${same.join(', ')}`).toBeLessThan(12);
    }
    await setLanguage('en', { save: false });
  });

  it('every key used in web/**/*.ts exists, and every key built at run time has keys that start like it', async () => {
    const files = sources();
    expect(files.some((f) => f.endsWith('dashboard.ts'))).toBe(true);
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
