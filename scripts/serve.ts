/**
 * Serves the built app (`dist/`) with the headers it needs: cross-origin isolation for WASM
 * threads, a Content Security Policy, `spinneret.json` telling the page where the model
 * manifest, the coordinator and the wallets list are, and compressed bodies (brotli or gzip,
 * each file compressed once and kept; see `compressed.ts`).
 */
import { stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, resolve } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { type Context, Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { CompressedFiles, pickEncoding } from './compressed.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export interface AppServerOptions {
  /** Folder of the built app. */
  distDir: string;
  port?: number;
  host?: string;
  /** Served as `/spinneret.json`, with `bridgeOrigins` added (the wallet bridges the CSP allows). */
  config: { manifestUrl: string; coordinatorUrl?: string; walletsListUrl?: string };
  /** More origins the page and its worker may fetch from (model hosts named by `?manifest=`, mirrors). */
  connectSources?: string[];
  /**
   * Where users reach this deployment (`SPINNERET_PUBLIC_URL` by default), e.g.
   * `https://spinneret.example`: `/tonconnect-manifest.json` names it, as wallets require.
   * Without one, the manifest names the address this server listens on.
   */
  publicUrl?: string;
}

/** The TON Connect manifest for a deployment at `origin`. */
export function tonConnectManifest(origin: string): { url: string; name: string; iconUrl: string } {
  const base = origin.replace(/\/+$/, '');
  return { url: base, name: 'Spinneret', iconUrl: `${base}/icon-180.png` };
}

/** Where TON Connect's public wallets list is published. */
export const TON_CONNECT_LISTS = ['https://config.ton.org', 'https://raw.githubusercontent.com'];

/**
 * The HTTP bridges of the wallets on TON Connect's public list (as @tonconnect/sdk 3 lists them).
 * The page offers only wallets whose bridge is allowed here (`bridgeOrigins` in spinneret.json),
 * so a wallet added to the public list later is left out rather than failing: add its origin
 * through `connectSources` to offer it.
 */
export const TON_CONNECT_BRIDGES = [
  'https://walletbot.me',
  'https://bridge.tonapi.io',
  'https://tonconnectbridge.mytonwallet.org',
  'https://connect.tonhubapi.com',
  'https://ton-connect-bridge.bgwapi.io',
  'https://www.okx.com',
  'https://wallet.binance.com',
  'https://wallet-bridge.fintopio.com',
  'https://sse-bridge.hot-labs.org',
  'https://api-node.bybit.com',
  'https://bridge.dewallet.pro',
  'https://ton-bridge.safepal.com',
  'https://dapp.gateio.services',
  'https://go-bridge.tomo.inc',
  'https://bridge.mirai.app',
  'https://tc.architecton.su',
  'https://ton-connect.mytokenpocket.vip',
  'https://bridge.uxuy.me',
  'https://tc.nicegram.app',
  'https://ton-connect-bridge.echooo.link',
  'https://blitzwallet.cfd',
  'https://web3-bridge.kolo.in',
  'https://connect.token.im',
];

/** Everything TON Connect may fetch: the lists and the bridges. */
export const TON_CONNECT_ORIGINS = [...TON_CONNECT_LISTS, ...TON_CONNECT_BRIDGES];

/** An http(s) URL's origin, and its ws(s) twin; nothing for relative URLs (this origin) and other schemes. */
function origins(url: string | undefined): string[] {
  if (url === undefined || !URL.canParse(url)) return [];
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return [];
  return [u.origin, `${u.protocol === 'https:' ? 'wss' : 'ws'}://${u.host}`];
}

/**
 * The Content Security Policy: scripts only from this origin, plus WebAssembly compilation
 * ('wasm-unsafe-eval', for onnxruntime-web and web-llm) and empty inline handlers; workers from this origin and `blob:`
 * (onnxruntime-web starts its thread workers from a blob); fetches and sockets only to this
 * origin, the coordinator, the model manifest's host, the wallets list and TON Connect's
 * bridges, and `data:` (the page hands TON Connect the wallets list it filtered as a data URL). Styles allow inline (TON Connect's modal injects its styles; the chart sets sizes);
 * images allow https (wallet icons come from each wallet's site).
 */
export function contentSecurityPolicy(options: Pick<AppServerOptions, 'config' | 'connectSources'>): string {
  const { config } = options;
  const connect = new Set([
    "'self'",
    ...origins(config.coordinatorUrl),
    ...origins(config.manifestUrl),
    ...origins(config.walletsListUrl),
    ...(options.connectSources ?? []).flatMap(origins),
    ...TON_CONNECT_ORIGINS,
  ]);
  connect.add('data:');
  return [
    "default-src 'self'",
    // TON Connect's UI sets an empty `ontouchstart` on <body> (an iOS :hover fix): the hash of "" allows exactly that.
    "script-src 'self' 'wasm-unsafe-eval' 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "worker-src 'self' blob:",
    `connect-src ${[...connect].join(' ')}`,
    "img-src 'self' data: https:",
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/** The wallet bridges a page served with these options may reach (what the CSP's connect-src allows of them). */
export function bridgeOrigins(options: Pick<AppServerOptions, 'connectSources'>): string[] {
  return [...new Set([...TON_CONNECT_BRIDGES, ...(options.connectSources ?? []).flatMap(origins).filter((o) => o.startsWith('http'))])];
}

/** A request path the app server refuses before looking at the disk: encoded separators, dot segments, NUL, backslashes. */
const UNSAFE_PATH = /%2f|%5c|%00/i;
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/;

/** `{error: {code, message}}`, the shape the coordinator answers with. */
function refuse(c: Context, status: 400 | 404 | 500, message: string): Response {
  return c.json({ error: { code: status === 404 ? 'NOT_FOUND' : status === 400 ? 'BAD_MESSAGE' : 'INTERNAL', message } }, status);
}

/** The app server as a Hono app (for tests and for mounting); {@link startAppServer} serves it. */
export function appServerApp(options: AppServerOptions): Hono<{ Variables: { file?: string } }> {
  const root = resolve(options.distDir);
  const csp = contentSecurityPolicy(options);
  const served = JSON.stringify({ ...options.config, bridgeOrigins: bridgeOrigins(options) });
  const compressed = new CompressedFiles();
  const app = new Hono<{ Variables: { file?: string } }>();
  app.use(
    secureHeaders({
      crossOriginEmbedderPolicy: 'require-corp',
      crossOriginOpenerPolicy: 'same-origin',
      crossOriginResourcePolicy: 'same-origin',
      xFrameOptions: 'DENY',
      // Plain-HTTP deployments (loopback, LAN kiosks) cannot use it; a TLS proxy in front sets its own.
      strictTransportSecurity: false,
    }),
  );
  // The CSP is built from the deployment's origins as one string; secureHeaders takes it per directive.
  app.use(async (c, next) => {
    await next();
    c.res.headers.set('Content-Security-Policy', csp);
  });
  app.use(async (c, next) => {
    const raw = new URL(c.req.url).pathname;
    let path: string;
    try {
      path = decodeURIComponent(raw);
    } catch {
      return refuse(c, 400, `Bad path: ${raw.slice(0, 200)} is not valid percent-encoding.`);
    }
    if (UNSAFE_PATH.test(raw) || DOT_SEGMENT.test(path) || path.includes('\\') || path.includes('\0')) {
      return refuse(c, 400, 'Bad path: encoded separators, dot segments, backslashes and NUL are not served.');
    }
    await next();
  });
  app.get('/tonconnect-manifest.json', (c) => {
    c.header('Cache-Control', 'no-cache');
    return c.json(tonConnectManifest(options.publicUrl ?? process.env['SPINNERET_PUBLIC_URL'] ?? new URL(c.req.url).origin));
  });
  app.get('/spinneret.json', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.body(served, 200, { 'Content-Type': TYPES['.json'] ?? 'application/json' });
  });
  // Compressed bodies: the static handler finds the file, this swaps its body for the kept compressed one.
  app.use(async (c, next) => {
    await next();
    const file = c.get('file');
    if (file === undefined || c.res.status !== 200 || !CompressedFiles.worthCompressing(file)) return;
    c.res.headers.set('Vary', 'Accept-Encoding');
    const encoding = pickEncoding(c.req.header('accept-encoding'));
    if (encoding === null) return;
    const info = await stat(file);
    const body = await compressed.get(file, info.size, info.mtimeMs, encoding);
    c.res.body?.cancel().catch(() => undefined);
    // Hono copies the old answer's headers onto the new one: change them in place.
    const headers = c.res.headers;
    headers.set('Content-Encoding', encoding);
    headers.set('Content-Length', String(body.length));
    headers.delete('Accept-Ranges');
    c.res = new Response(c.req.method === 'HEAD' ? null : new Uint8Array(body), { status: 200, headers });
  });
  const onFound = (file: string, c: Context<{ Variables: { file?: string } }>): void => {
    c.set('file', file);
    // Hashed assets never change; the service worker script must be checked on every visit so updates arrive.
    c.header('Cache-Control', file.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    const type = TYPES[extname(file)];
    if (type !== undefined) c.header('Content-Type', type);
  };
  app.use('*', serveStatic({ root, onFound }));
  // Paths without an extension are app routes: serve the shell.
  app.get('*', async (c, next) => {
    if (extname(c.req.path) !== '') return next();
    return serveStatic({ root, path: 'index.html', onFound })(c, next);
  });
  app.notFound((c) => refuse(c, 404, `Not found: ${c.req.path.slice(0, 200)}`));
  app.onError((err, c) => {
    console.error('app server: request failed', err);
    return refuse(c, 500, 'The app server failed to answer; try again.');
  });
  return app;
}

export async function startAppServer(options: AppServerOptions): Promise<RunningServer> {
  const app = appServerApp(options);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  return listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
}

export function listen(server: Server, port: number, host: string): Promise<RunningServer> {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address() as AddressInfo;
      resolveListen({
        url: `http://${host}:${actual}`,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
