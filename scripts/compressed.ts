/**
 * Compressed bodies for the app server: each file is compressed once per encoding with Node's
 * zlib (off the main thread) and kept in memory until it changes on disk, so no request pays for
 * compression twice. Small files get the strongest settings; large ones (the onnxruntime WASM,
 * tens of MB) a faster level that still takes them to a fifth of their size.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

export type Encoding = 'br' | 'gzip';

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

/** Text and WASM compress well; images (PNG) are compressed already. */
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.webmanifest', '.wasm', '.svg', '.map', '.txt']);
/** Above this, a faster compression level, bytes. */
const LARGE = 256 * 1024;
/** Bodies kept in memory at most, bytes (the oldest go first). */
const MAX_KEPT = 96 * 1024 * 1024;

/** The best encoding the client accepts (`Accept-Encoding`), brotli first; null for none. */
export function pickEncoding(header: string | string[] | undefined): Encoding | null {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const accepted = new Map<string, number>();
  for (const part of text.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((x) => x !== undefined);
    accepted.set(name.trim(), q === undefined ? 1 : Number(q));
  }
  const ok = (name: string): boolean => (accepted.get(name) ?? accepted.get('*') ?? 0) > 0;
  if (ok('br')) return 'br';
  if (ok('gzip')) return 'gzip';
  return null;
}

/** Compresses `data` for `encoding`; `text` tunes brotli for text (everything but WASM). */
export async function compress(data: Buffer, encoding: Encoding, text = true): Promise<Buffer> {
  const large = data.length > LARGE;
  if (encoding === 'gzip') return gz(data, { level: large ? 6 : 9 });
  return brotli(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: large ? 5 : 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      [constants.BROTLI_PARAM_MODE]: text ? constants.BROTLI_MODE_TEXT : constants.BROTLI_MODE_GENERIC,
    },
  });
}

interface Kept {
  stamp: string;
  body: Promise<Buffer>;
  /** Bytes, once compressed. */
  bytes: number;
}

export class CompressedFiles {
  readonly #kept = new Map<string, Kept>();

  static worthCompressing(path: string): boolean {
    return COMPRESSIBLE.has(extname(path).toLowerCase());
  }

  /** The file's body in `encoding`, compressed now or taken from memory; `size` and `mtimeMs` tell a changed file. */
  get(path: string, size: number, mtimeMs: number, encoding: Encoding): Promise<Buffer> {
    const key = `${encoding}:${path}`;
    const stamp = `${size}:${mtimeMs}`;
    const kept = this.#kept.get(key);
    if (kept !== undefined && kept.stamp === stamp) {
      // Most recently used last, so that the oldest is dropped first.
      this.#kept.delete(key);
      this.#kept.set(key, kept);
      return kept.body;
    }
    const entry: Kept = { stamp, body: readFile(path).then((data) => compress(data, encoding, extname(path) !== '.wasm')), bytes: 0 };
    this.#kept.delete(key);
    this.#kept.set(key, entry);
    entry.body.then(
      (buffer) => {
        entry.bytes = buffer.length;
        this.#trim(key);
      },
      () => this.#kept.get(key) === entry && this.#kept.delete(key),
    );
    return entry.body;
  }

  /** Bytes kept now. */
  get keptBytes(): number {
    let total = 0;
    for (const entry of this.#kept.values()) total += entry.bytes;
    return total;
  }

  #trim(keep: string): void {
    let total = this.keptBytes;
    for (const [key, entry] of this.#kept) {
      if (total <= MAX_KEPT) return;
      if (key === keep) continue;
      this.#kept.delete(key);
      total -= entry.bytes;
    }
  }
}
