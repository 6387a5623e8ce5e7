/**
 * The page's words. Every string a person reads comes from a JSON catalog:
 * `web/i18n/<lang>/<area>.json`, flat `{ "key": "text" }`, looked up as `"<area>.<key>"`.
 * Text may name parameters in braces: `"{count} jobs done"`. A key missing from a language
 * falls back to English; a key missing from English shows the key itself (a test finds those).
 * Counted words have one key per plural form of the language (`jobs_one`, `jobs_few`,
 * `jobs_many`, `jobs_other`, as `Intl.PluralRules` names them), looked up with {@link tp}.
 */
export const LANGUAGES = ['en', 'ko', 'ru'] as const;
export type Language = (typeof LANGUAGES)[number];

/** The name of each language in itself, for the switcher. */
export const LANGUAGE_NAMES: Record<Language, string> = { en: 'English', ko: '한국어', ru: 'Русский' };

type Catalog = Record<string, string>;

// English is in the page's bundle (it is also the fallback); another language loads when chosen.
const catalogs = buildCatalogs(import.meta.glob<Catalog>('./en/*.json', { eager: true, import: 'default' }));
const loaders: Record<Exclude<Language, 'en'>, () => Promise<{ default: Record<string, Catalog> }>> = {
  ko: () => import('./ko.ts'),
  ru: () => import('./ru.ts'),
};
const loaded = new Set<Language>(['en']);

/** Loads a language's catalog (once). */
export async function loadLanguage(lang: Language): Promise<void> {
  if (loaded.has(lang) || lang === 'en') return;
  const { default: files } = await loaders[lang]();
  Object.assign(catalogs[lang], buildCatalogs(files)[lang]);
  loaded.add(lang);
}

const STORAGE_KEY = 'spinneret.lang';
let current: Language = 'en';
const listeners = new Set<(lang: Language) => void>();

/** `{ './en/app.json': {...} }` → `{ en: { 'app.key': ... } }`. */
export function buildCatalogs(modules: Record<string, Catalog>): Record<Language, Catalog> {
  const out: Record<Language, Catalog> = { en: {}, ko: {}, ru: {} };
  for (const [path, catalog] of Object.entries(modules)) {
    const match = /^\.\/([a-z]+)\/([a-z-]+)\.json$/.exec(path);
    if (match === null) continue;
    const [, lang, area] = match;
    if (!isLanguage(lang)) continue;
    for (const [key, text] of Object.entries(catalog)) out[lang][`${area}.${key}`] = text;
  }
  return out;
}

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

/** The saved choice, else the browser's first supported language, else English. */
export function detectLanguage(saved: string | null, preferred: readonly string[]): Language {
  if (isLanguage(saved)) return saved;
  for (const tag of preferred) {
    const base = tag.toLowerCase().split('-')[0];
    if (isLanguage(base)) return base;
  }
  return 'en';
}

/** Picks the language at start-up from storage and `navigator.languages`, and loads its words. */
export async function initLanguage(): Promise<Language> {
  let saved: string | null = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage denied: the browser's languages decide.
  }
  await setLanguage(detectLanguage(saved, navigator.languages), { save: false });
  return current;
}

export function language(): Language {
  return current;
}

/** Loads the language, switches to it, saves the choice, sets `<html lang>` and tells the listeners (which re-render). */
export async function setLanguage(lang: Language, { save = true } = {}): Promise<void> {
  // English words stand in for a language that cannot load (offline before its first use).
  await loadLanguage(lang).catch(() => undefined);
  current = lang;
  if (save) {
    try {
      localStorage.setItem(STORAGE_KEY, lang);
    } catch {
      // Not saved; the choice still holds for this page.
    }
  }
  if (typeof document !== 'undefined') document.documentElement.lang = lang;
  for (const listener of listeners) listener(lang);
}

/** Calls `listener` after every language switch; returns the unsubscribe function. */
export function onLanguage(listener: (lang: Language) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The text for `key` (`"<area>.<key>"`) in the current language, with `{name}` parameters filled in. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  const text = catalogs[current][key] ?? catalogs.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/** The plural form of `count` in the current language: `one`, `few`, `many`, `other`… */
export function pluralForm(count: number): Intl.LDMLPluralRule {
  return new Intl.PluralRules(current).select(count);
}

/** The text for a counted key (`"earn.jobs"` → `earn.jobs_one|few|many|other`), `{count}` formatted the language's way. */
export function tp(key: string, count: number, params: Record<string, string | number> = {}): string {
  const form = `${key}_${pluralForm(count)}`;
  const found = catalogs[current][form] ?? catalogs[current][`${key}_other`] ?? catalogs.en[form] ?? catalogs.en[`${key}_other`];
  const text = found ?? key;
  const all: Record<string, string | number> = { count: formatNumber(count), ...params };
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in all ? String(all[name]) : whole));
}

/** Formats a number the current language's way. */
export function formatNumber(value: number, options?: Intl.NumberFormatOptions): string {
  return new Intl.NumberFormat(current, options).format(value);
}

/** Every key of every loaded language, for the completeness test (load them all first). */
export function catalogKeys(): Record<Language, string[]> {
  return { en: Object.keys(catalogs.en), ko: Object.keys(catalogs.ko), ru: Object.keys(catalogs.ru) };
}
