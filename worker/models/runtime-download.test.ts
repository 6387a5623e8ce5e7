import { describe, expect, it } from 'vitest';
import { measureRuntimeDownload } from './runtime-download.ts';

/** A fetch double for the three requests the measure makes: the list, the cache probe, the HEAD. */
function fakeFetch(options: { list?: unknown; cached?: string[]; sent?: Record<string, number> }) {
  const seen: string[] = [];
  const impl = async (input: URL | RequestInfo, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    seen.push(`${init?.method ?? 'GET'} ${init?.cache ?? ''} ${url.pathname}`);
    if (url.pathname === '/runtime.json') {
      return options.list === undefined ? new Response('no', { status: 404 }) : Response.json(options.list);
    }
    if (init?.cache === 'only-if-cached') {
      if (options.cached?.includes(url.pathname)) return new Response('wasm');
      throw new TypeError('not in cache');
    }
    const length = options.sent?.[url.pathname];
    return new Response(null, { headers: length === undefined ? {} : { 'content-length': String(length) } });
  };
  return { fetch: impl, seen };
}

describe('the runtime download', () => {
  it('counts each listed file at the size the server sends (compressed), unless cached', async () => {
    const f = fakeFetch({
      list: { onnx: [{ url: '/assets/ort-a.wasm', bytes: 26_781_914 }] },
      sent: { '/assets/ort-a.wasm': 4_943_773 },
    });
    expect(await measureRuntimeDownload('http://app.test', f.fetch)).toEqual({ bytes: 4_943_773, rawBytes: 26_781_914 });
    expect(f.seen).toEqual(['GET no-store /runtime.json', 'GET only-if-cached /assets/ort-a.wasm', 'HEAD no-store /assets/ort-a.wasm']);
  });

  it('costs nothing once the browser holds it, and falls back to the raw size without a Content-Length', async () => {
    const list = {
      onnx: [
        { url: '/assets/ort-a.wasm', bytes: 100 },
        { url: '/assets/ort-b.wasm', bytes: 50 },
      ],
    };
    const f = fakeFetch({ list, cached: ['/assets/ort-a.wasm'] });
    expect(await measureRuntimeDownload('http://app.test', f.fetch)).toEqual({ bytes: 50, rawBytes: 150 });
  });

  it('is unknown (null) without a list, and ignores entries that are not same-origin paths', async () => {
    expect(await measureRuntimeDownload('http://app.test', fakeFetch({}).fetch)).toBeNull();
    const odd = fakeFetch({ list: { onnx: [{ url: 'https://elsewhere.example/x.wasm', bytes: 5 }] } });
    expect(await measureRuntimeDownload('http://app.test', odd.fetch)).toBeNull();
  });
});
