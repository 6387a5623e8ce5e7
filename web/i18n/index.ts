/**
 * The page's words. Every string a person reads comes from a JSON catalog:
 * `web/i18n/<lang>/<area>.json`, flat `{ "key": "text" }`, looked up as `"<area>.<key>"`.
 * Text may name parameters in braces: `"{count} jobs done"`. A key missing from a language
 * falls back to English; a key missing from English shows the key itself (a test finds those).
 */
export const LANGUAGES = ['en', 'ko', 'ru'] as const;
export type Language = (typeof LANGUAGES)[number];

/** The name of each language in itself, for the switcher. */
export const LANGUAGE_NAMES: Record<Language, string> = { en: 'English', ko: '한국어', ru: 'Русский' };

type Catalog = Record<string, string>;

const files = import.meta.glob<Catalog>('./*/*.json', { eager: true, import: 'default' });
const catalogs = buildCatalogs(files);

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

/** Picks the language at start-up from storage and `navigator.languages`. */
export function initLanguage(): Language {
  let saved: string | null = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage denied: the browser's languages decide.
  }
  setLanguage(detectLanguage(saved, navigator.languages), { save: false });
  return current;
}

export function language(): Language {
  return current;
}

/** Switches the language, saves the choice, sets `<html lang>` and tells the listeners (which re-render). */
export function setLanguage(lang: Language, { save = true } = {}): void {
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

/** Formats a number the current language's way. */
export function formatNumber(value: number, options?: Intl.NumberFormatOptions): string {
  return new Intl.NumberFormat(current, options).format(value);
}

/** Every key of every language, for the completeness test. */
export function catalogKeys(): Record<Language, string[]> {
  return { en: Object.keys(catalogs.en), ko: Object.keys(catalogs.ko), ru: Object.keys(catalogs.ru) };
}
