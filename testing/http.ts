/** Test support (not used by the app) for tests of HTTP clients: a free port, and a fetch that counts what it sends. */
import { createServer } from 'node:net';

/** A port on 127.0.0.1 nothing listens on (now). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A fetch that counts the requests to each `METHOD path-pattern`, and keeps the status of each answer. */
export function countingFetch(): {
  fetch: typeof fetch;
  count: (method: string, path: RegExp) => number;
  statuses: (method: string, path: RegExp) => number[];
  /** When each matching request was sent, ms since epoch. */
  at: (method: string, path: RegExp) => number[];
  /** The `Idempotency-Key` header of each matching request. */
  keys: (method: string, path: RegExp) => Array<string | undefined>;
} {
  const seen: Array<{ request: string; status: number | null; at: number; key: string | undefined }> = [];
  const matching = (method: string, path: RegExp) =>
    seen.filter((s) => s.request.startsWith(`${method} `) && path.test(s.request.slice(method.length + 1)));
  return {
    fetch: async (input, init) => {
      const entry = {
        request: `${init?.method ?? 'GET'} ${new URL(input instanceof Request ? input.url : input.toString()).pathname}`,
        status: null as number | null,
        at: Date.now(),
        key: new Headers(init?.headers).get('idempotency-key') ?? undefined,
      };
      seen.push(entry);
      const response = await fetch(input, init);
      entry.status = response.status;
      return response;
    },
    count: (method, path) => matching(method, path).length,
    statuses: (method, path) => matching(method, path).flatMap((s) => (s.status === null ? [] : [s.status])),
    at: (method, path) => matching(method, path).map((s) => s.at),
    keys: (method, path) => matching(method, path).map((s) => s.key),
  };
}
