/**
 * Serves the built app (`dist/`) with the headers it needs: cross-origin isolation for WASM
 * threads, a Content Security Policy, `spinneret.json` telling the page where the model
 * manifest, the coordinator and the wallets list are, and compressed bodies (brotli or gzip,
 * each file compressed once and kept; see `compressed.ts`).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';
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

export async function startAppServer(options: AppServerOptions): Promise<RunningServer> {
  const root = resolve(options.distDir);
  const csp = contentSecurityPolicy(options);
  const served = JSON.stringify({ ...options.config, bridgeOrigins: bridgeOrigins(options) });
  const compressed = new CompressedFiles();
  const server = createServer((req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': csp,
    };
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/spinneret.json') {
      res.writeHead(200, { ...headers, 'Content-Type': TYPES['.json'], 'Cache-Control': 'no-store' });
      res.end(served);
      return;
    }
    const file = normalize(join(root, path));
    if (!file.startsWith(root)) {
      res.writeHead(403, headers).end('Forbidden');
      return;
    }
    void serveFile(file, path, root)
      .then((found) => {
        if (found === null) {
          res.writeHead(404, { ...headers, 'Content-Type': TYPES['.txt'] }).end(`Not found: ${path}`);
          return;
        }
        // Hashed assets never change; the service worker script must be checked on every visit so updates arrive.
        const cache = found.path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
        const type = TYPES[extname(found.path)] ?? 'application/octet-stream';
        const encoding = CompressedFiles.worthCompressing(found.path) ? pickEncoding(req.headers['accept-encoding']) : null;
        const common = { ...headers, 'Content-Type': type, 'Cache-Control': cache, Vary: 'Accept-Encoding' };
        if (encoding === null) {
          res.writeHead(200, { ...common, 'Content-Length': found.size });
          if (req.method === 'HEAD') res.end();
          else createReadStream(found.path).pipe(res);
          return;
        }
        return compressed.get(found.path, found.size, found.mtimeMs, encoding).then((body) => {
          res.writeHead(200, { ...common, 'Content-Encoding': encoding, 'Content-Length': body.length });
          res.end(req.method === 'HEAD' ? undefined : body);
        });
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(500, headers);
        res.end('Internal error');
      });
  });
  return listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
}

interface FoundFile {
  path: string;
  size: number;
  mtimeMs: number;
}

async function serveFile(file: string, path: string, root: string): Promise<FoundFile | null> {
  for (const candidate of [file, join(file, 'index.html')]) {
    const info = await stat(candidate).catch(() => null);
    if (info?.isFile()) return { path: candidate, size: info.size, mtimeMs: info.mtimeMs };
  }
  // Paths without an extension are app routes: serve the shell.
  if (extname(path) === '') {
    const index = join(root, 'index.html');
    const info = await stat(index).catch(() => null);
    if (info?.isFile()) return { path: index, size: info.size, mtimeMs: info.mtimeMs };
  }
  return null;
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
