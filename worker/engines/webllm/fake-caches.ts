/**
 * A test double of the Cache API that fails the way Chromium 156 does (measured): `add()`
 * of an unreachable URL rejects with `TypeError: Failed to fetch`, of a non-OK response with
 * `TypeError: Failed to execute 'add' on 'Cache': Request failed`, and an aborted request
 * rejects with the signal's reason. With it, web-llm's real `reload()` runs in Node.
 */

export class FakeCache {
  readonly entries = new Map<string, Uint8Array>();
  readonly #fetch: typeof fetch;

  constructor(fetchFn: typeof fetch) {
    this.#fetch = fetchFn;
  }

  async match(request: RequestInfo | URL): Promise<Response | undefined> {
    const bytes = this.entries.get(keyOf(request));
    return bytes === undefined ? undefined : new Response(bytes.slice());
  }

  async put(request: RequestInfo | URL, response: Response): Promise<void> {
    this.entries.set(keyOf(request), new Uint8Array(await response.arrayBuffer()));
  }

  async delete(request: RequestInfo | URL): Promise<boolean> {
    return this.entries.delete(keyOf(request));
  }

  async add(request: RequestInfo | URL): Promise<void> {
    const signal = request instanceof Request ? request.signal : undefined;
    let response: Response;
    try {
      response = await this.#fetch(keyOf(request), signal === undefined ? {} : { signal });
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason;
      throw new TypeError('Failed to fetch', { cause: err });
    }
    if (!response.ok) throw new TypeError("Failed to execute 'add' on 'Cache': Request failed");
    await this.put(request, response);
  }

  async keys(): Promise<Request[]> {
    return [...this.entries.keys()].map((url) => new Request(url));
  }
}

export class FakeCacheStorage {
  readonly caches = new Map<string, FakeCache>();
  readonly #fetch: typeof fetch;

  constructor(fetchFn: typeof fetch = (input, init) => fetch(input, init)) {
    this.#fetch = fetchFn;
  }

  async open(name: string): Promise<FakeCache> {
    let cache = this.caches.get(name);
    if (cache === undefined) {
      cache = new FakeCache(this.#fetch);
      this.caches.set(name, cache);
    }
    return cache;
  }

  /** The bytes cached under `url` in cache `name`, if any. */
  get(name: string, url: string): Uint8Array | undefined {
    return this.caches.get(name)?.entries.get(url);
  }
}

function keyOf(request: RequestInfo | URL): string {
  return typeof request === 'string' ? request : request instanceof URL ? request.href : request.url;
}
