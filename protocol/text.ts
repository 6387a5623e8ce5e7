/**
 * What text may hold where it is stored or shown: no NUL (PostgreSQL refuses it in `text`),
 * no other control characters, no lone UTF-16 surrogates (they are not Unicode and cannot be
 * encoded as UTF-8), and a length limit. Every id and text field from outside is checked
 * against these before it reaches memory or SQL; see docs/protocol.md.
 */
/* eslint-disable no-control-regex -- these patterns exist to find control characters */
import * as v from 'valibot';

/** C0 controls but tab, newline and carriage return; DEL; C1 controls; lone surrogates. */
const UNSAFE_TEXT =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** The same, and tab, newline and carriage return too: one-line fields (ids, names, models). */
const UNSAFE_LINE = /[\u0000-\u001F\u007F-\u009F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const UNSAFE_TEXT_MESSAGE = 'text may not hold NUL, control characters or lone surrogates';

/** Whether `text` holds nothing {@link SafeText} refuses (length aside). */
export function isSafeText(text: string): boolean {
  return !UNSAFE_TEXT.test(text);
}

/** Whether `text` holds nothing {@link SafeLine} refuses (length aside). */
export function isSafeLine(text: string): boolean {
  return !UNSAFE_LINE.test(text);
}

/** Text of at most `max` characters, newlines allowed (messages, reasons). */
export const SafeText = (max: number) =>
  v.pipe(v.string(), v.maxLength(max, `at most ${max} characters`), v.check(isSafeText, UNSAFE_TEXT_MESSAGE));

/** One line of at most `max` characters (names, labels, model ids). */
export const SafeLine = (max: number) =>
  v.pipe(v.string(), v.maxLength(max, `at most ${max} characters`), v.check(isSafeLine, `${UNSAFE_TEXT_MESSAGE} or line breaks`));

/** Longest path segment or query value the services read, characters. */
export const MAX_PATH_SEGMENT = 256;

/**
 * The first string in a parsed JSON value (keys included) that {@link isSafeText} refuses, as a
 * path like `messages[2].content`; null when every string is fine. Stops at `maxDepth`.
 */
export function findUnsafeText(value: unknown, maxDepth = 64): string | null {
  const walk = (node: unknown, path: string, depth: number): string | null => {
    if (typeof node === 'string') return isSafeText(node) ? null : path || '(the body)';
    if (typeof node !== 'object' || node === null) return null;
    if (depth >= maxDepth) return `${path} (nested deeper than ${maxDepth})`;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const found = walk(node[i], `${path}[${i}]`, depth + 1);
        if (found !== null) return found;
      }
      return null;
    }
    for (const [key, child] of Object.entries(node)) {
      const at = path === '' ? key : `${path}.${key}`;
      if (!isSafeText(key)) return `a key in ${path || 'the body'}`;
      const found = walk(child, at, depth + 1);
      if (found !== null) return found;
    }
    return null;
  };
  return walk(value, '', 0);
}

/**
 * Why a request path or query cannot be read (bad percent-encoding, unsafe text, an over-long
 * segment); null when it is fine. `rawPath` and `rawQuery` are still percent-encoded.
 */
export function unsafeRequestTarget(rawPath: string, rawQuery: string): string | null {
  const parts = [...rawPath.split('/'), ...rawQuery.split('&').flatMap((p) => p.split('='))];
  for (const part of parts) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      return `${part.slice(0, 40)} is not valid percent-encoded UTF-8`;
    }
    if (decoded.length > MAX_PATH_SEGMENT) return `a path segment or query value is longer than ${MAX_PATH_SEGMENT} characters`;
    if (!isSafeLine(decoded)) return `the path or query holds NUL, control characters or lone surrogates`;
  }
  return null;
}

/** `text` with what {@link isSafeLine} refuses written as `\uXXXX`, for error messages that quote input. */
export function printable(text: string): string {
  return text.replace(
    /[\u0000-\u001F\u007F-\u009F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
