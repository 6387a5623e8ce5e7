/**
 * A model's tokenizer as the coordinator and the requester SDK read it: its files fetched
 * once from the URLs the catalog lists, each checked against its size and SHA-256 before it
 * is parsed, and the facts the billing envelope's byte bound rests on. WebCrypto only, so it
 * runs in Node and browsers alike.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { IntegrityError, ModelUnreachableError } from './errors.ts';
import type { ModelEntry, ModelFile } from './manifest.ts';

/** Largest tokenizer file read, bytes (real ones are 2–11 MB). */
export const MAX_TOKENIZER_FILE_BYTES = 64 * 1024 * 1024;

/** The manifest files of a model's tokenizer: `tokenizer.json` and, if listed, its config; null when it has none. */
export function tokenizerFiles(model: ModelEntry): { json: ModelFile; config: ModelFile | undefined } | null {
  if (model.engine !== 'onnx' || model.onnx.tokenizer === undefined) return null;
  const byName = (name: string | undefined) => (name === undefined ? undefined : model.files.find((f) => f.name === name));
  const json = byName(model.onnx.tokenizer);
  return json === undefined ? null : { json, config: byName(model.onnx.tokenizerConfig) };
}

/** Downloads one model file and checks its size and SHA-256; throws {@link IntegrityError} or {@link ModelUnreachableError}. */
export async function fetchVerified(file: ModelFile, fetchImpl: typeof fetch = fetch): Promise<Uint8Array> {
  if (file.size > MAX_TOKENIZER_FILE_BYTES) {
    throw new IntegrityError(file.url, file.sha256, `it is listed at ${file.size} bytes, over the ${MAX_TOKENIZER_FILE_BYTES}-byte limit`);
  }
  let bytes: Uint8Array;
  try {
    const response = await fetchImpl(file.url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (err) {
    throw new ModelUnreachableError(file.url, err instanceof Error ? err.message : String(err));
  }
  if (bytes.byteLength !== file.size) throw new IntegrityError(file.url, file.sha256, `${bytes.byteLength} bytes, expected ${file.size}`);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  const found = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  if (found !== file.sha256) throw new IntegrityError(file.url, file.sha256, found);
  return bytes;
}

/** Parses a verified `tokenizer.json` (and config) into a tokenizer. */
export function makeTokenizer(json: Uint8Array, config: Uint8Array | undefined): Tokenizer {
  const parse = (bytes: Uint8Array): object => JSON.parse(new TextDecoder().decode(bytes)) as object;
  return new Tokenizer(parse(json), config === undefined ? {} : parse(config));
}

/**
 * GPT-2's byte-level alphabet: the printable character a byte-level BPE vocabulary writes
 * for each byte (bytes_to_unicode in the GPT-2 and Hugging Face tokenizers sources).
 */
function byteLevelDecoder(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = [...bytes];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i] ?? b), b]));
}

/** Bytes one raw text byte takes inside a JSON string (JSON.stringify's escaping). */
function escapedByte(b: number): number {
  if (b === 0x22 || b === 0x5c) return 2;
  if (b === 0x08 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d) return 2;
  return b < 0x20 ? 6 : 1;
}

/** Bytes a piece of text takes inside a JSON string, in UTF-8. */
function escapedText(text: string): number {
  let n = 0;
  for (const b of new TextEncoder().encode(text)) n += escapedByte(b);
  return n;
}

/**
 * The most bytes of a JSON payload one token of this tokenizer can stand for: over every
 * vocabulary entry and added token, the length of the text it decodes to, JSON-escaped
 * (byte-level entries are mapped back to their bytes; `▁` is a space; a WordPiece `##`
 * prefix is no text). Input text the tokenizer's normalizer shrinks or drops (collapsed
 * whitespace, fused unknown characters) can stand for more; the SDK then declares at least
 * the bound's floor (docs/protocol.md, "Billing envelopes").
 */
export function maxBytesPerToken(tokenizerJson: unknown): number {
  const root = (tokenizerJson ?? {}) as { model?: { type?: string; vocab?: unknown }; decoder?: unknown; added_tokens?: unknown };
  const vocab = root.model?.vocab;
  const pieces: string[] = Array.isArray(vocab)
    ? vocab.map((entry) => (Array.isArray(entry) ? String(entry[0]) : String(entry)))
    : vocab !== null && typeof vocab === 'object'
      ? Object.keys(vocab)
      : [];
  const added = Array.isArray(root.added_tokens)
    ? root.added_tokens.map((t) => {
        const content = (t as { content?: unknown }).content;
        return typeof content === 'string' ? content : '';
      })
    : [];
  const byteLevel = JSON.stringify(root.decoder ?? null).includes('"ByteLevel"');
  const decoder = byteLevel ? byteLevelDecoder() : null;
  let most = 1;
  for (const piece of pieces) {
    let cost: number;
    if (decoder !== null) {
      cost = 0;
      for (const ch of piece) {
        const b = decoder.get(ch);
        cost += b === undefined ? escapedText(ch) : escapedByte(b);
      }
    } else {
      cost = escapedText(piece.replace(/^##/, '').replaceAll('▁', ' '));
    }
    if (cost > most) most = cost;
  }
  for (const text of added) most = Math.max(most, escapedText(text));
  return most;
}
