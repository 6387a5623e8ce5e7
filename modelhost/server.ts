/**
 * The local model host: serves the generated test models the way the Hugging Face hub
 * serves real ones, plus a manifest that lists them with their sizes and SHA-256.
 *
 * URL layout (all GET and HEAD, CORS-open):
 * - `/manifest.json`: `{version: 1, models}`, file URLs absolute on the origin the request used.
 * - `/spinneret-test/<model>/resolve/main/<file>`: a model file, e.g. `onnx/model.onnx`.
 *
 * Corruption, for integrity tests (the manifest keeps the true hash; the byte in the middle
 * of the file is flipped, so the size stays the same):
 * - the `corrupt` option: a live Set of `<model>/<file>` keys (`tiny-q4/onnx/model_q4.onnx`);
 *   add or delete keys while the host runs;
 * - with the `corruptRoutes` option only (tests; never `npm start`):
 *   `PUT` / `DELETE /__corrupt/spinneret-test/<model>/resolve/main/<file>`: the same toggle
 *   over HTTP, for tests in another process than the host, and
 *   `GET /__corrupt/spinneret-test/<model>/resolve/main/<file>`: always the corrupted bytes.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Manifest, type ModelEntry, parseManifest } from '../protocol/manifest.ts';
import { type BuiltModel, modelList, testModels, type TestModels } from './models/index.ts';

/** The organization part of every model path. */
export const ORG = 'spinneret-test';
const CORRUPT_PREFIX = '/__corrupt';

/** An extra route: return true when it answered the request. */
export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface ModelHostHandlerOptions {
  /** `<model>/<file>` keys served corrupted; read on every request, so changes apply at once. */
  corrupt?: Set<string>;
  /** Serves the `/__corrupt` routes (tests only). Default false. */
  corruptRoutes?: boolean;
  /** Manifests kept for different `Host` headers (the most recently used). Default 16. */
  maxManifestHosts?: number;
  /** Tried in order before the built-in routes. */
  routes?: readonly Route[];
  /** Origin for the manifest's file URLs; by default the request's own `Host`. */
  baseUrl?: string;
  /** The models to serve; by default the cached build. */
  models?: TestModels;
  /** Stand-ins of published layouts served next to them, in the same hub layout (`standinModels()`). */
  standins?: readonly BuiltModel<unknown>[];
  /** More files, served as they are at `/<path>` (e.g. other engines' fixtures); their `corrupt` key is the path. */
  extraFiles?: ReadonlyMap<string, Uint8Array>;
  /** More manifest entries, given the base URL the manifest is written for. */
  extraEntries?: (baseUrl: string) => ModelEntry[];
  /** Where failed requests are reported (a pino logger); default console.error. */
  log?: { error(fields: object, message: string): void };
}

export interface ModelHostOptions extends Omit<ModelHostHandlerOptions, 'baseUrl'> {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
}

export interface ModelHost {
  /** Origin without a trailing slash, e.g. `http://127.0.0.1:8090`. */
  url: string;
  manifestUrl: string;
  /** The live corruption set (the one passed in, or a new one). */
  corrupt: Set<string>;
  /** Manifests kept in memory now (one per recent `Host`). */
  readonly manifestsCached: () => number;
  close(): Promise<void>;
}

/** A `Host` header: a name or IPv4 address, or a bracketed IPv6 address, with an optional port. */
const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** A request handler that also says how many manifests it keeps. */
export type ModelHostHandler = ((req: IncomingMessage, res: ServerResponse) => void) & { readonly manifestsCached: () => number };

/** Path of a model file on the host, e.g. `/spinneret-test/tiny-q4/resolve/main/onnx/model_q4.onnx`. */
export function modelFilePath(modelId: string, file: string): string {
  return `/${ORG}/${modelId}/resolve/main/${file}`;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A copy of `bytes` with the middle byte inverted. */
export function corruptBytes(bytes: Uint8Array): Uint8Array {
  // Not slice(): on a Node Buffer that is a view, and the flip would hit the original.
  const copy = new Uint8Array(bytes);
  const i = Math.floor(copy.length / 2);
  copy[i] = (copy[i] ?? 0) ^ 0xff;
  return copy;
}

interface HostedFile {
  bytes: Uint8Array;
  sha256: string;
  contentType: string;
  /** Key in the `corrupt` set. */
  key: string;
}

function contentType(file: string): string {
  if (file.endsWith('.json')) return 'application/json; charset=utf-8';
  if (file.endsWith('.wasm')) return 'application/wasm';
  return 'application/octet-stream';
}

function hosted(bytes: Uint8Array, name: string, key: string): HostedFile {
  return { bytes, sha256: sha256Hex(bytes), contentType: contentType(name), key };
}

/** Every servable file by URL path, hashed once. */
function indexFiles(
  models: TestModels,
  extraFiles: ReadonlyMap<string, Uint8Array> = new Map(),
  standins: readonly BuiltModel<unknown>[] = [],
): Map<string, HostedFile> {
  const index = new Map<string, HostedFile>();
  for (const model of [...modelList(models), ...standins]) {
    for (const [name, bytes] of model.files) index.set(modelFilePath(model.id, name), hosted(bytes, name, `${model.id}/${name}`));
  }
  for (const [path, bytes] of extraFiles) {
    const clean = path.replace(/^\/+/, '');
    index.set(`/${clean}`, hosted(bytes, clean, clean));
  }
  return index;
}

/**
 * The manifest for `baseUrl` (an origin, optionally with a path prefix), the generated models
 * first, then `extraEntries`; checked by {@link parseManifest}.
 */
export function buildManifest(
  baseUrl: string,
  models: TestModels = testModels(),
  extraEntries: (baseUrl: string) => ModelEntry[] = () => [],
  standins: readonly BuiltModel<unknown>[] = [],
): Manifest {
  const base = baseUrl.replace(/\/+$/, '');
  const manifest = {
    version: 1 as const,
    models: [
      ...[...modelList(models), ...standins].map((model) => ({
        ...model.entry,
        files: [...model.files].map(([name, bytes]) => ({
          name,
          url: base + modelFilePath(model.id, name),
          size: bytes.length,
          sha256: sha256Hex(bytes),
        })),
      })),
      ...extraEntries(base),
    ],
  };
  return parseManifest(manifest);
}

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': '*',
  'Access-Control-Expose-Headers': 'Content-Length, Content-Type',
  'Cross-Origin-Resource-Policy': 'cross-origin',
  // Corruption toggles must show on the next fetch, not after a cache expires.
  'Cache-Control': 'no-store',
} as const;

function send(req: IncomingMessage, res: ServerResponse, status: number, body: Uint8Array | string, type: string): void {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  res.writeHead(status, { ...CORS_HEADERS, 'Content-Type': type, 'Content-Length': String(bytes.length) });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function sendText(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
  send(req, res, status, text + '\n', 'text/plain; charset=utf-8');
}

/** The request handler, for mounting on another server or adding routes. Every request gets an answer. */
export function createModelHostHandler(options: ModelHostHandlerOptions = {}): ModelHostHandler {
  const models = options.models ?? testModels();
  const files = indexFiles(models, options.extraFiles, options.standins);
  const corrupt = options.corrupt ?? new Set<string>();
  const manifests = new Map<string, Uint8Array>();
  const maxHosts = options.maxManifestHosts ?? 16;

  /** The manifest for the request's origin; null for a `Host` header that is no host. */
  const manifestFor = (req: IncomingMessage): Uint8Array | null => {
    const hostHeader = req.headers.host ?? 'localhost';
    if (options.baseUrl === undefined && !(HOST_HEADER.test(hostHeader) && URL.canParse(`http://${hostHeader}/`))) return null;
    const base = options.baseUrl ?? `http://${hostHeader}`;
    let bytes = manifests.get(base);
    if (bytes === undefined) {
      bytes = new TextEncoder().encode(JSON.stringify(buildManifest(base, models, options.extraEntries, options.standins), null, 2) + '\n');
    }
    // Most recently used last; the oldest goes when more hosts than the limit ask.
    manifests.delete(base);
    manifests.set(base, bytes);
    for (const key of manifests.keys()) {
      if (manifests.size <= maxHosts) break;
      manifests.delete(key);
    }
    return bytes;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    for (const route of options.routes ?? []) {
      if (await route(req, res, url)) return;
    }
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(204, { ...CORS_HEADERS, 'Access-Control-Max-Age': '600' });
      res.end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return sendText(req, res, 400, `Bad path: ${url.pathname} is not valid percent-encoding.`);
    }
    const readable = method === 'GET' || method === 'HEAD';
    if (path === '/manifest.json') {
      if (!readable) return sendText(req, res, 405, `${method} is not allowed on /manifest.json; use GET.`);
      const manifest = manifestFor(req);
      if (manifest === null) return sendText(req, res, 400, 'Bad Host header: send host[:port].');
      return send(req, res, 200, manifest, 'application/json; charset=utf-8');
    }
    const forced = options.corruptRoutes === true && path.startsWith(CORRUPT_PREFIX + '/');
    const file = files.get(forced ? path.slice(CORRUPT_PREFIX.length) : path);
    if (file === undefined) {
      const ids = [...modelList(models), ...(options.standins ?? [])].map((m) => m.id);
      return sendText(
        req,
        res,
        404,
        `Not found: ${path}. This model host serves /manifest.json and /${ORG}/<model>/resolve/main/<file> for ${ids.join(', ')}.`,
      );
    }
    if (forced && (method === 'PUT' || method === 'DELETE')) {
      if (method === 'PUT') corrupt.add(file.key);
      else corrupt.delete(file.key);
      res.writeHead(204, CORS_HEADERS);
      res.end();
      return;
    }
    if (!readable) return sendText(req, res, 405, `${method} is not allowed on ${path}; use GET or HEAD.`);
    const bytes = forced || corrupt.has(file.key) ? corruptBytes(file.bytes) : file.bytes;
    send(req, res, 200, bytes, file.contentType);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (options.log !== undefined) options.log.error({ err, method: req.method, path: req.url }, 'request failed');
      else console.error('model host: request failed', err);
      if (!res.headersSent) sendText(req, res, 500, `The model host failed: ${err instanceof Error ? err.message : String(err)}`);
      else res.destroy();
    });
  };
  return Object.assign(handler, { manifestsCached: () => manifests.size });
}

/** Starts the host on `host:port` (default 127.0.0.1, a free port). Builds the models once per process. */
export async function startModelHost(options: ModelHostOptions = {}): Promise<ModelHost> {
  const host = options.host ?? '127.0.0.1';
  const corrupt = options.corrupt ?? new Set<string>();
  const handler = createModelHostHandler({ ...options, corrupt });
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    manifestUrl: `${url}/manifest.json`,
    corrupt,
    manifestsCached: handler.manifestsCached,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
