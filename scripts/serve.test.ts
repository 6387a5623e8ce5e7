import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bridgeOrigins, contentSecurityPolicy, startAppServer, TON_CONNECT_BRIDGES, TON_CONNECT_ORIGINS } from './serve.ts';

const directive = (csp: string, name: string): string[] =>
  csp
    .split('; ')
    .find((d) => d.startsWith(`${name} `))
    ?.split(' ')
    .slice(1) ?? [];

/** A raw GET (fetch would decode the body and hide the encoding). */
function get(url: string, headers: Record<string, string>, method = 'GET') {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('content security policy', () => {
  it('lets the page reach its coordinator (HTTP and socket), model host and TON Connect, and nothing else', () => {
    const csp = contentSecurityPolicy({
      config: { manifestUrl: 'https://models.example/manifest.json', coordinatorUrl: 'https://coord.example:8443/' },
      connectSources: ['http://127.0.0.1:9000'],
    });
    const connect = directive(csp, 'connect-src');
    expect(connect).toEqual(
      expect.arrayContaining([
        "'self'",
        'https://coord.example:8443',
        'wss://coord.example:8443',
        'https://models.example',
        'http://127.0.0.1:9000',
        ...TON_CONNECT_ORIGINS,
      ]),
    );
    expect(connect).not.toContain('https:');
    // The filtered wallets list is handed to TON Connect as a data: URL; data: never leaves the machine.
    expect(connect).toContain('data:');
    expect(directive(csp, 'script-src')).toEqual(expect.arrayContaining(["'self'", "'wasm-unsafe-eval'"]));
    expect(directive(csp, 'script-src')).not.toContain("'unsafe-inline'");
    expect(directive(csp, 'script-src')).not.toContain("'unsafe-eval'");
    expect(directive(csp, 'object-src')).toEqual(["'none'"]);
  });

  it('admits the bridge of every wallet on the public list, Wallet in Telegram included', () => {
    const csp = contentSecurityPolicy({ config: { manifestUrl: '/m.json' } });
    for (const bridge of TON_CONNECT_BRIDGES) expect(directive(csp, 'connect-src')).toContain(bridge);
    expect(TON_CONNECT_BRIDGES).toContain('https://walletbot.me');
    expect(bridgeOrigins({ connectSources: ['https://bridge.example/x', '/relative'] })).toEqual([
      ...TON_CONNECT_BRIDGES,
      'https://bridge.example',
    ]);
  });
});

describe('the app server', () => {
  it('sends compressed bodies (brotli, else gzip), says so, and tells the page which bridges it may reach', async () => {
    const dist = mkdtempSync(join(tmpdir(), 'dist-'));
    mkdirSync(join(dist, 'assets'));
    const script = 'export const words = "contribute your GPU";\n'.repeat(500);
    writeFileSync(join(dist, 'assets', 'app-abc.js'), script);
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>x</title>');
    writeFileSync(join(dist, 'icon.png'), Buffer.alloc(64, 7));
    const server = await startAppServer({ distDir: dist, config: { manifestUrl: '/m.json' } });
    try {
      const br = await get(`${server.url}/assets/app-abc.js`, { 'accept-encoding': 'gzip, deflate, br' });
      expect(br.headers['content-encoding']).toBe('br');
      expect(br.headers['vary']).toBe('Accept-Encoding');
      expect(Number(br.headers['content-length'])).toBe(br.body.length);
      expect(br.body.length).toBeLessThan(script.length / 10);
      expect(brotliDecompressSync(br.body).toString()).toBe(script);

      const gz = await get(`${server.url}/assets/app-abc.js`, { 'accept-encoding': 'gzip' });
      expect(gz.headers['content-encoding']).toBe('gzip');
      expect(gunzipSync(gz.body).toString()).toBe(script);

      const head = await get(`${server.url}/assets/app-abc.js`, { 'accept-encoding': 'gzip' }, 'HEAD');
      expect(head.headers['content-length']).toBe(String(gz.body.length));
      expect(head.body.length).toBe(0);

      const plain = await get(`${server.url}/assets/app-abc.js`, {});
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.body.toString()).toBe(script);
      // PNGs are compressed already.
      expect((await get(`${server.url}/icon.png`, { 'accept-encoding': 'br' })).headers['content-encoding']).toBeUndefined();

      const config = JSON.parse((await get(`${server.url}/spinneret.json`, {})).body.toString()) as { bridgeOrigins: string[] };
      expect(config.bridgeOrigins).toEqual(TON_CONNECT_BRIDGES);
    } finally {
      await server.close();
    }
  });

  it('answers bad percent-encoding with 400 and stays up; never reads outside dist (a sibling folder sharing its prefix)', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'serve-'));
    const dist = join(parent, 'dist');
    mkdirSync(dist);
    mkdirSync(join(parent, 'dist-old'));
    writeFileSync(join(parent, 'dist-old', 'x'), 'SECRET-OUTSIDE-DIST');
    writeFileSync(join(parent, 'secret.txt'), 'SECRET-OUTSIDE-DIST');
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>app</title>');
    const server = await startAppServer({ distDir: dist, config: { manifestUrl: '/m.json' } });
    try {
      const bad = await get(`${server.url}/%E0%A4%A`, {});
      expect(bad.status).toBe(400);
      expect(bad.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(bad.body.toString())).toMatchObject({ error: { code: 'BAD_MESSAGE' } });
      for (const path of [
        '/..%2fdist-old/x',
        '/..%2Fsecret.txt',
        '/%2e%2e/secret.txt',
        '/..%5csecret.txt',
        '/a/..%2f..%2fsecret.txt',
        '/x%00.html',
      ]) {
        const res = await get(`${server.url}${path}`, {});
        expect(res.body.toString(), path).not.toContain('SECRET');
        expect([400, 404], path).toContain(res.status);
      }
      // Still serving after the bad requests.
      const ok = await get(`${server.url}/`, {});
      expect(ok.status).toBe(200);
      expect(ok.body.toString()).toContain('<title>app</title>');
    } finally {
      await server.close();
    }
  });

  it('sends the CSP and the security headers on every answer, errors included', async () => {
    const dist = mkdtempSync(join(tmpdir(), 'dist-'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>x</title>');
    const server = await startAppServer({ distDir: dist, config: { manifestUrl: '/m.json' } });
    try {
      for (const path of ['/', '/spinneret.json', '/missing.js', '/%E0%A4%A', '/fleet']) {
        const res = await get(`${server.url}${path}`, {});
        expect(res.headers['content-security-policy'], path).toBe(contentSecurityPolicy({ config: { manifestUrl: '/m.json' } }));
        expect(res.headers['cross-origin-opener-policy'], path).toBe('same-origin');
        expect(res.headers['cross-origin-embedder-policy'], path).toBe('require-corp');
        expect(res.headers['cross-origin-resource-policy'], path).toBe('same-origin');
        expect(res.headers['x-content-type-options'], path).toBe('nosniff');
        expect(res.headers['referrer-policy'], path).toBe('no-referrer');
        expect(res.headers['x-frame-options'], path).toBe('DENY');
      }
      expect((await get(`${server.url}/missing.js`, {})).status).toBe(404);
      expect((await get(`${server.url}/fleet`, {})).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('names the deployment’s public URL in the TON Connect manifest (wallets refuse a placeholder)', async () => {
    const dist = mkdtempSync(join(tmpdir(), 'dist-'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>x</title>');
    const server = await startAppServer({
      distDir: dist,
      config: { manifestUrl: '/m.json' },
      publicUrl: 'https://contribute.example.org/',
    });
    const local = await startAppServer({ distDir: dist, config: { manifestUrl: '/m.json' } });
    try {
      const manifest = JSON.parse((await get(`${server.url}/tonconnect-manifest.json`, {})).body.toString()) as Record<string, string>;
      expect(manifest).toEqual({
        url: 'https://contribute.example.org',
        name: 'Spinneret',
        iconUrl: 'https://contribute.example.org/icon-180.png',
      });
      const own = JSON.parse((await get(`${local.url}/tonconnect-manifest.json`, {})).body.toString()) as Record<string, string>;
      expect(own['url']).toBe(local.url);
    } finally {
      await server.close();
      await local.close();
    }
  });
});
