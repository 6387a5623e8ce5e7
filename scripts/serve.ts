/**
 * Serves the built app (`dist/`) with the headers it needs: cross-origin isolation for WASM
 * threads, and `spinneret.json` telling the page where the model manifest is.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';

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
  /** Served as `/spinneret.json`. */
  config: { manifestUrl: string; coordinatorUrl?: string };
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function startAppServer(options: AppServerOptions): Promise<RunningServer> {
  const root = resolve(options.distDir);
  const server = createServer((req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
    };
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/spinneret.json') {
      res.writeHead(200, { ...headers, 'Content-Type': TYPES['.json'], 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(options.config));
      return;
    }
    const file = normalize(join(root, path));
    if (!file.startsWith(root)) {
      res.writeHead(403, headers).end('Forbidden');
      return;
    }
    void serveFile(file, path, root).then(
      (found) => {
        if (found === null) {
          res.writeHead(404, { ...headers, 'Content-Type': TYPES['.txt'] }).end(`Not found: ${path}`);
          return;
        }
        const cache = found.path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
        res.writeHead(200, {
          ...headers,
          'Content-Type': TYPES[extname(found.path)] ?? 'application/octet-stream',
          'Content-Length': found.size,
          'Cache-Control': cache,
        });
        if (req.method === 'HEAD') res.end();
        else createReadStream(found.path).pipe(res);
      },
      () => res.writeHead(500, headers).end('Internal error'),
    );
  });
  return listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
}

async function serveFile(file: string, path: string, root: string): Promise<{ path: string; size: number } | null> {
  for (const candidate of [file, join(file, 'index.html')]) {
    const info = await stat(candidate).catch(() => null);
    if (info?.isFile()) return { path: candidate, size: info.size };
  }
  // Paths without an extension are app routes: serve the shell.
  if (extname(path) === '') {
    const index = join(root, 'index.html');
    const info = await stat(index).catch(() => null);
    if (info?.isFile()) return { path: index, size: info.size };
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
