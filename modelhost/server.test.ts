import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '../protocol/manifest.ts';
import { startModelHost, type ModelHost } from './server.ts';

const sha256 = (bytes: ArrayBuffer): string => createHash('sha256').update(new Uint8Array(bytes)).digest('hex');
const Q4_KEY = 'tiny-q4/onnx/model_q4.onnx';

describe('model host', () => {
  let host: ModelHost;
  let manifest: Manifest;

  beforeAll(async () => {
    host = await startModelHost({
      port: 0,
      corruptRoutes: true,
      routes: [
        (_req, res, url) => {
          if (url.pathname !== '/extra') return false;
          res.writeHead(200, { 'Content-Type': 'text/plain' }).end('extra route');
          return true;
        },
      ],
    });
    const res = await fetch(host.manifestUrl);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    manifest = parseManifest(await res.json(), host.manifestUrl);
  });

  afterAll(async () => {
    await host.close();
  });

  const fileUrl = (modelId: string, name: string): string => {
    const file = manifest.models.find((m) => m.id === modelId)?.files.find((f) => f.name === name);
    if (file === undefined) throw new Error(`no ${modelId}/${name} in the manifest`);
    return file.url;
  };

  it('serves a manifest that parseManifest accepts, listing the three models with kinds and specs', () => {
    expect(manifest.models.map((m) => [m.id, m.kinds])).toEqual([
      ['tiny-embed', ['embed']],
      ['tiny-q4', ['infer']],
      ['tiny-decoder', ['generate', 'chat']],
    ]);
    for (const model of manifest.models) {
      expect(model.engine).toBe('onnx');
      expect(model.vramBytes).toBeGreaterThan(0);
      for (const file of model.files) expect(file.url).toBe(`${host.url}/spinneret-test/${model.id}/resolve/main/${file.name}`);
    }
  });

  it('serves every file with the size and SHA-256 the manifest lists, and CORS headers', async () => {
    for (const model of manifest.models) {
      for (const file of model.files) {
        const res = await fetch(file.url);
        expect(res.status).toBe(200);
        expect(res.headers.get('access-control-allow-origin')).toBe('*');
        expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
        expect(res.headers.get('content-length')).toBe(String(file.size));
        expect(res.headers.get('content-type')).toBe(
          file.name.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream',
        );
        const body = await res.arrayBuffer();
        expect(body.byteLength).toBe(file.size);
        expect(sha256(body), file.url).toBe(file.sha256);
      }
    }
  });

  it('answers HEAD without a body and OPTIONS preflights', async () => {
    const url = fileUrl('tiny-q4', 'onnx/model_q4.onnx');
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const preflight = await fetch(url, {
      method: 'OPTIONS',
      headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'GET' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('GET');
  });

  it('answers unknown paths and models with 404 and a text that says what exists', async () => {
    for (const path of [
      '/nope',
      '/spinneret-test/no-model/resolve/main/onnx/model.onnx',
      '/other-org/tiny-q4/resolve/main/onnx/model_q4.onnx',
    ]) {
      const res = await fetch(host.url + path);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/^Not found: .*\/manifest\.json.*tiny-decoder/);
    }
    expect((await fetch(host.manifestUrl, { method: 'POST' })).status).toBe(405);
  });

  it('writes file URLs on the origin the client used', async () => {
    const viaLocalhost = host.manifestUrl.replace('127.0.0.1', 'localhost');
    const other = parseManifest(await (await fetch(viaLocalhost)).json());
    expect(other.models[0]!.files[0]!.url.startsWith(host.url.replace('127.0.0.1', 'localhost'))).toBe(true);
    expect(other.models[0]!.files[0]!.sha256).toBe(manifest.models[0]!.files[0]!.sha256);
  });

  it('serves a corrupted byte for files in the live corrupt set, same size, manifest unchanged', async () => {
    const url = fileUrl('tiny-q4', 'onnx/model_q4.onnx');
    const expected = manifest.models[1]!.files[0]!;
    host.corrupt.add(Q4_KEY);
    try {
      const body = await (await fetch(url)).arrayBuffer();
      expect(body.byteLength).toBe(expected.size);
      expect(sha256(body)).not.toBe(expected.sha256);
      const again = parseManifest(await (await fetch(host.manifestUrl)).json());
      expect(again.models[1]!.files[0]!.sha256).toBe(expected.sha256);
    } finally {
      host.corrupt.delete(Q4_KEY);
    }
    expect(sha256(await (await fetch(url)).arrayBuffer())).toBe(expected.sha256);
  });

  it('toggles corruption over HTTP and serves corrupted bytes at the /__corrupt alias', async () => {
    const url = fileUrl('tiny-q4', 'onnx/model_q4.onnx');
    const expected = manifest.models[1]!.files[0]!.sha256;
    const control = url.replace(host.url, `${host.url}/__corrupt`);
    expect(sha256(await (await fetch(control)).arrayBuffer())).not.toBe(expected);

    expect((await fetch(control, { method: 'PUT' })).status).toBe(204);
    expect(host.corrupt.has(Q4_KEY)).toBe(true);
    expect(sha256(await (await fetch(url)).arrayBuffer())).not.toBe(expected);
    expect((await fetch(control, { method: 'DELETE' })).status).toBe(204);
    expect(sha256(await (await fetch(url)).arrayBuffer())).toBe(expected);
  });

  it('tries extra routes first', async () => {
    const res = await fetch(`${host.url}/extra`);
    expect(await res.text()).toBe('extra route');
  });

  it('starts a second host on another free port, with extra files and manifest entries', async () => {
    const extra = new TextEncoder().encode('extra bytes');
    const second = await startModelHost({
      corrupt: new Set([Q4_KEY]),
      extraFiles: new Map([['spinneret-test/extra/resolve/main/weights.bin', extra]]),
      extraEntries: (base) => [
        {
          id: 'extra',
          name: 'Extra',
          kinds: ['infer'],
          engine: 'onnx',
          vramBytes: 1,
          requiredFeatures: [],
          files: [
            {
              name: 'weights.bin',
              url: `${base}/spinneret-test/extra/resolve/main/weights.bin`,
              size: extra.length,
              sha256: sha256(extra.buffer),
            },
          ],
          onnx: { model: 'weights.bin', backends: ['wasm'], inputs: [] },
        },
      ],
    });
    try {
      expect(second.url).not.toBe(host.url);
      const res = await fetch(`${second.url}/spinneret-test/tiny-q4/resolve/main/onnx/model_q4.onnx`);
      expect(sha256(await res.arrayBuffer())).not.toBe(manifest.models[1]!.files[0]!.sha256);
      const listed = parseManifest(await (await fetch(second.manifestUrl)).json());
      const file = listed.models.at(-1)!.files[0]!;
      expect(listed.models.map((m) => m.id)).toEqual(['tiny-embed', 'tiny-q4', 'tiny-decoder', 'extra']);
      expect(sha256(await (await fetch(file.url)).arrayBuffer())).toBe(file.sha256);
    } finally {
      await second.close();
    }
  });

  it('keeps at most a few manifests however many Host headers callers invent, and refuses malformed ones', async () => {
    const get = (hostHeader: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${host.url}/manifest.json`, { headers: { host: hostHeader } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < 300; i++) expect(await get(`h${i}.example:${1000 + i}`)).toBe(200);
    expect(host.manifestsCached()).toBeLessThanOrEqual(16);
    for (const bad of ['a"b', 'x/y', 'a b', 'a'.repeat(300), 'h:99999']) expect(await get(bad), bad).toBe(400);
  });
});

describe('model host without test routes', () => {
  it('serves no /__corrupt routes unless a test asks for them', async () => {
    const plain = await startModelHost({ port: 0 });
    try {
      const path = '/__corrupt/spinneret-test/tiny-q4/resolve/main/onnx/model_q4.onnx';
      expect((await fetch(`${plain.url}${path}`, { method: 'PUT' })).status).toBe(404);
      expect((await fetch(`${plain.url}${path}`, { method: 'DELETE' })).status).toBe(404);
      expect((await fetch(`${plain.url}${path}`)).status).toBe(404);
      expect(plain.corrupt.size).toBe(0);
      expect((await fetch(`${plain.url}${path.slice('/__corrupt'.length)}`, { method: 'PUT' })).status).toBe(405);
    } finally {
      await plain.close();
    }
  });
});
