/**
 * Test doubles for the coordinator's tests: a settable clock, a contributor worker speaking
 * the wire protocol over a real WebSocket, and an NDJSON reader for requester event streams.
 */
import WebSocket from 'ws';
import type { JobKind } from '../protocol/manifest.ts';
import {
  type Assignment,
  type CoordinatorMessage,
  enrollMessage,
  helloMessage,
  type JobEvent,
  PROTOCOL_VERSION,
} from '../protocol/wire.ts';
import { type CoordinatorOptions, createCoordinator } from './app.ts';
import type { Clock } from './clock.ts';
import { MemoryStore } from './store/memory.ts';

/** The billing envelope of the test requester's jobs: room for the usage {@link FakeWorker.chunk} reports. */
export const TEST_ENVELOPE = { inputTokens: 10, maxOutputTokens: 10 };

/** A clock that moves only when told. */
export class FakeClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

type Message<T extends CoordinatorMessage['type']> = Extract<CoordinatorMessage, { type: T }>;

const b64 = (bytes: ArrayBuffer | Uint8Array): string =>
  Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('base64url');

/** A fresh Ed25519 identity, as a worker creates one. */
export async function newIdentity(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
}

/** A contributor worker over a real WebSocket; received messages are buffered until taken. */
export class FakeWorker {
  readonly ws: WebSocket;
  readonly identity: CryptoKeyPair;
  readonly hpkeKey = b64(crypto.getRandomValues(new Uint8Array(32)));
  readonly closed: Promise<{ code: number; reason: string }>;
  contributorId = '';
  #inbox: CoordinatorMessage[] = [];
  #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket, identity: CryptoKeyPair) {
    this.ws = ws;
    this.identity = identity;
    ws.on('message', (data: Buffer) => {
      this.#inbox.push(JSON.parse(data.toString('utf8')) as CoordinatorMessage);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async connect(url: string, identity?: CryptoKeyPair): Promise<FakeWorker> {
    const keys = identity ?? (await newIdentity());
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/contributor`);
    const worker = new FakeWorker(ws, keys);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return worker;
  }

  /** Connects, answers the challenge, offers `models` and `slots`. */
  static async ready(
    url: string,
    options: {
      models?: string[];
      consent?: JobKind[];
      slots?: number;
      identity?: CryptoKeyPair;
      /** The state its models are in; `loaded` by default. */
      modelState?: 'loaded' | 'cached' | 'available';
    } = {},
  ): Promise<FakeWorker> {
    const worker = await FakeWorker.connect(url, options.identity);
    await worker.hello();
    worker.capabilities(options.models ?? ['m'], options.consent ?? ['chat'], options.modelState);
    if (options.slots !== undefined) worker.lease(options.slots);
    await worker.sync();
    return worker;
  }

  /** The next buffered message of this type (earlier ones of other types stay buffered). */
  async take<T extends CoordinatorMessage['type']>(type: T, timeoutMs = 3_000): Promise<Message<T>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.#inbox.splice(i, 1)[0] as Message<T>;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no ${type} message within ${timeoutMs} ms; inbox: ${JSON.stringify(this.#inbox)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** True when no message of this type arrives within `ms`. */
  async none(type: CoordinatorMessage['type'], ms = 150): Promise<boolean> {
    return this.take(type, ms).then(
      () => false,
      () => true,
    );
  }

  /** Waits until the coordinator handled everything sent before (frames are handled in order). */
  async sync(): Promise<void> {
    const t = Math.floor(Math.random() * 1e9);
    this.send({ v: 1, type: 'ping', t });
    while ((await this.take('pong')).t !== t);
  }

  /** Signs the challenge and waits for `welcome`. */
  async hello(): Promise<Message<'welcome'>> {
    this.send(await this.signedHello());
    const welcome = await this.take('welcome');
    this.contributorId = welcome.contributorId;
    return welcome;
  }

  /** A valid hello for this connection's challenge (not sent). */
  async signedHello(): Promise<Record<string, unknown>> {
    const { nonce } = await this.take('challenge');
    const identityKey = b64(await crypto.subtle.exportKey('raw', this.identity.publicKey));
    const signature = b64(
      await crypto.subtle.sign(
        { name: 'Ed25519' },
        this.identity.privateKey,
        new Uint8Array(helloMessage(nonce, identityKey, this.hpkeKey)),
      ),
    );
    return {
      v: PROTOCOL_VERSION,
      type: 'hello',
      identityKey,
      hpkeKey: this.hpkeKey,
      nonce,
      signature,
      client: { name: 'test', version: '0' },
    };
  }

  /** This device's signature of an enrollment with `token` (`POST /v1/enroll`'s proof of possession). */
  async signEnrollment(token: string): Promise<string> {
    const identityKey = b64(await crypto.subtle.exportKey('raw', this.identity.publicKey));
    return b64(await crypto.subtle.sign({ name: 'Ed25519' }, this.identity.privateKey, new Uint8Array(enrollMessage(token, identityKey))));
  }

  capabilities(models: string[], consent: JobKind[], state: 'loaded' | 'cached' | 'available' = 'loaded'): void {
    this.send({
      v: 1,
      type: 'capabilities',
      adapter: null,
      models: models.map((id) => ({ id, state })),
      consent,
      engineClass: 'test',
    });
  }

  lease(slots: number): void {
    this.send({ v: 1, type: 'lease', slots });
  }

  chunk(job: { jobId: string; leaseId: string }, seq: number, final = false): void {
    const usage = final ? { usage: { promptTokens: 3, completionTokens: 5 } } : {};
    this.send({ v: 1, type: 'chunk', jobId: job.jobId, leaseId: job.leaseId, seq, final, sealed: { ct: `result${seq}` }, ...usage });
  }

  send(message: unknown): void {
    this.sendRaw(JSON.stringify(message));
  }

  sendRaw(frame: string): void {
    this.ws.send(frame);
  }

  close(): void {
    this.ws.close();
  }
}

/** Reads a requester's NDJSON event stream one event at a time. */
export class EventReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = '';

  constructor(response: Response) {
    if (response.body === null) throw new Error('no body');
    this.#reader = response.body.getReader();
  }

  /** The next event, or null at the end of the stream. */
  async next(timeoutMs = 3_000): Promise<JobEvent | null> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const newline = this.#buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return JSON.parse(line) as JobEvent;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), Math.max(0, until - Date.now()));
      });
      const { done, value } = await Promise.race([this.#reader.read(), timeout]).finally(() => clearTimeout(timer));
      if (done) return null;
      this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Every remaining event until the stream ends. */
  async rest(): Promise<JobEvent[]> {
    const events: JobEvent[] = [];
    for (let event = await this.next(); event !== null; event = await this.next()) events.push(event);
    return events;
  }
}

/** A listening coordinator on a memory store and a fake clock, with a requester's helpers. */
export async function startCoordinator(options: Partial<CoordinatorOptions> = {}) {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const errors: string[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => void errors.push(message) };
  const coordinator = createCoordinator({ store, clock, logger, ...options });
  const server = await coordinator.listen({ port: 0 });
  const { secret } = await coordinator.createApiKey('test', { jobsPerMinute: 1000, maxInFlight: 1000 });
  const workers: FakeWorker[] = [];
  const api = (method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return {
    store,
    clock,
    coordinator,
    errors,
    url: server.url,
    /** The test key's `Authorization` header. */
    auth: `Bearer ${secret}`,
    api,
    /** A welcomed worker offering model `m` for chat. */
    async worker(opts: Parameters<typeof FakeWorker.ready>[1] = {}): Promise<FakeWorker> {
      const worker = await FakeWorker.ready(server.url, opts);
      workers.push(worker);
      return worker;
    },
    async createJob(model = 'm'): Promise<{ jobId: string; assignment: Assignment | null }> {
      const res = await api('POST', '/v1/jobs', { model, kind: 'chat', billing: TEST_ENVELOPE });
      if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
      return (await res.json()) as { jobId: string; assignment: Assignment | null };
    },
    submit(jobId: string, attempt: number): Promise<Response> {
      return api('PUT', `/v1/jobs/${jobId}/payload`, { attempt, sealed: { enc: 'ZW5j', ct: `payload-for-attempt-${attempt}` } });
    },
    async events(jobId: string): Promise<EventReader> {
      return new EventReader(await api('GET', `/v1/jobs/${jobId}/events`));
    },
    async close(): Promise<void> {
      for (const worker of workers) worker.close();
      await coordinator.close();
    },
  };
}
