/**
 * The engine runtime a device downloads once before its first ONNX job: onnxruntime-web's WASM
 * (about 27 MB, sent compressed). Counted in what Start will download, shown before Start, and
 * held against the owner's download cap like a model's files. The build lists the files in
 * `runtime.json` (scripts/runtime-assets.ts); the size counted is what the server sends.
 */

/** What the runtime still costs to download. */
export interface RuntimeDownload {
  /** Bytes to download before the first ONNX job, as sent (compressed); 0 when already in the browser's cache. */
  bytes: number;
  /** Uncompressed size of the files, bytes. */
  rawBytes: number;
}

interface Listed {
  url: string;
  bytes: number;
}

function listed(json: unknown): Listed[] {
  const onnx = (json as { onnx?: unknown } | null)?.onnx;
  if (!Array.isArray(onnx)) return [];
  return onnx.filter(
    (f): f is Listed =>
      typeof (f as Listed).url === 'string' &&
      /^\/[A-Za-z0-9._/-]{1,200}$/.test((f as Listed).url) &&
      Number.isSafeInteger((f as Listed).bytes) &&
      (f as Listed).bytes >= 0,
  );
}

/**
 * Reads `runtime.json` from `origin` and what each file would cost now: nothing when the HTTP
 * cache holds it, else its size as the server sends it (a HEAD request's Content-Length, which
 * is the compressed size when the server compresses). Null when there is no list (a dev server).
 */
export async function measureRuntimeDownload(origin: string, doFetch: typeof fetch = fetch): Promise<RuntimeDownload | null> {
  const response = await doFetch(new URL('/runtime.json', origin), { cache: 'no-store' }).catch(() => null);
  if (response === null || !response.ok) return null;
  const files = listed(await response.json().catch(() => null));
  if (files.length === 0) return null;
  let bytes = 0;
  for (const file of files) {
    const url = new URL(file.url, origin);
    // Only the cache answers: no request leaves the browser.
    const cached = await doFetch(url, { cache: 'only-if-cached', mode: 'same-origin' }).then(
      (r) => (void r.body?.cancel().catch(() => undefined), r.ok),
      () => false,
    );
    if (cached) continue;
    const head = await doFetch(url, { method: 'HEAD', cache: 'no-store' }).catch(() => null);
    const sent = Number(head?.headers.get('content-length') ?? NaN);
    bytes += Number.isSafeInteger(sent) && sent > 0 ? sent : file.bytes;
  }
  return { bytes, rawBytes: files.reduce((sum, f) => sum + f.bytes, 0) };
}
