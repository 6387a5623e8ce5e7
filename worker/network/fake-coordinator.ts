/**
 * Test support (not used by the app): a scripted coordinator that speaks the contributor
 * protocol over any socket: it verifies the hello, seals jobs as a requester would, and opens
 * the result chunks. WebCrypto only, so it serves Node tests and browser tests alike.
 */
import {
  createResultOpener,
  exportPublicKey,
  fromB64url,
  generateHpkeKeyPair,
  sealJob,
  toB64url,
  type ResultPiece,
} from '../../protocol/envelope.ts';
import { type JobRequest, type JobResult, type Usage, wireKindOf } from '../../protocol/jobs.ts';
import { ContributorMessage, helloMessage, parseFrame, PROTOCOL_VERSION, type CoordinatorMessage } from '../../protocol/wire.ts';

/** The server end of one WebSocket. */
export interface PeerSocket {
  send(frame: string): void;
  close(code?: number, reason?: string): void;
}

type Message<T extends ContributorMessage['type']> = Extract<ContributorMessage, { type: T }>;

/** One contributor connection: answers the handshake and pings, records everything else. */
export class FakeSession {
  readonly received: ContributorMessage[] = [];
  /** Null until a hello arrived; then whether its signature verified. */
  helloVerified: boolean | null = null;
  hpkeKey = '';
  contributorId = '';
  closed = false;
  readonly #socket: PeerSocket;
  readonly #options: FakeCoordinatorOptions;
  readonly #unread: ContributorMessage[] = [];
  readonly #waiters = new Set<() => void>();
  #tail: Promise<void> = Promise.resolve();
  #nonce = toB64url(crypto.getRandomValues(new Uint8Array(16)));
  #jobs = 0;

  readonly #stall: boolean;

  constructor(socket: PeerSocket, options: FakeCoordinatorOptions, stall: boolean) {
    this.#socket = socket;
    this.#options = options;
    this.#stall = stall;
    this.send({ v: PROTOCOL_VERSION, type: 'challenge', nonce: this.#nonce, serverTime: Date.now() + (options.clockSkewMs ?? 0) });
  }

  /** Feed a frame from the socket. */
  receive(frame: string): void {
    this.#tail = this.#tail.then(() => this.#handle(frame));
  }

  /** The socket closed. */
  markClosed(): void {
    this.closed = true;
    for (const wake of this.#waiters) wake();
  }

  send(message: CoordinatorMessage): void {
    this.#socket.send(JSON.stringify(message));
  }

  close(code = 1000, reason = 'test'): void {
    this.#socket.close(code, reason);
  }

  /** The next unread message of `type` (matching `match`), waiting for it up to `timeoutMs`. */
  next<T extends ContributorMessage['type']>(
    type: T,
    match: (m: Message<T>) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<Message<T>> {
    const take = (): Message<T> | undefined => {
      const index = this.#unread.findIndex((m) => m.type === type && match(m as Message<T>));
      return index < 0 ? undefined : (this.#unread.splice(index, 1)[0] as Message<T>);
    };
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = take();
        if (found === undefined) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`No ${type} within ${timeoutMs} ms; unread: ${this.#unread.map((m) => m.type).join(', ') || 'none'}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Unread messages of `type` so far, without waiting. */
  unread(type: ContributorMessage['type']): ContributorMessage[] {
    return this.#unread.filter((m) => m.type === type);
  }

  /** Seals `request` to the contributor's key (as a requester would) and sends it as a `job`. */
  async sendJob(request: JobRequest, options: JobOptions = {}): Promise<SentJob> {
    const jobId = options.jobId ?? `job${++this.#jobs}`;
    const requester = await generateHpkeKeyPair(false);
    const attempt = options.attempt ?? 1;
    const aad = { jobId, attempt: options.sealedAttempt ?? attempt, model: request.model, kind: wireKindOf(request) };
    const sealed = await sealJob(this.hpkeKey, { request, resultKey: await exportPublicKey(requester.publicKey) }, aad);
    const leaseId = `lease-${jobId}`;
    const deadline = options.deadline ?? Date.now() + 60_000;
    this.send({
      v: PROTOCOL_VERSION,
      type: 'job',
      jobId,
      leaseId,
      model: request.model,
      kind: wireKindOf(request),
      attempt,
      deadline,
      sealed,
    });
    return { jobId, leaseId, requester };
  }

  /** Reads and opens the job's chunks up to the final one. */
  async readResult(job: SentJob): Promise<{ deltas: string[]; result: JobResult; usage: Usage | undefined }> {
    const opener = createResultOpener(job.requester, job.jobId);
    const deltas: string[] = [];
    for (;;) {
      const chunk = await this.next('chunk', (m) => m.jobId === job.jobId);
      const piece: ResultPiece = await opener.open(chunk);
      if (piece.type === 'delta') deltas.push(piece.text);
      else return { deltas, result: piece.result, usage: chunk.usage };
    }
  }

  async #handle(frame: string): Promise<void> {
    const parsed = parseFrame(ContributorMessage, frame);
    if (!parsed.ok) throw new Error(`The contributor sent a bad frame: ${parsed.error.message}`);
    const message = parsed.value;
    this.received.push(message);
    if (message.type === 'hello') return this.#stall ? undefined : this.#hello(message);
    if (message.type === 'ping') return this.send({ v: PROTOCOL_VERSION, type: 'pong', t: message.t });
    this.#unread.push(message);
    for (const wake of [...this.#waiters]) wake();
  }

  async #hello(hello: Message<'hello'>): Promise<void> {
    const key = await crypto.subtle.importKey('raw', bytes(hello.identityKey), { name: 'Ed25519' }, false, ['verify']);
    const signed = helloMessage(this.#nonce, hello.identityKey, hello.hpkeKey);
    this.helloVerified =
      hello.nonce === this.#nonce && (await crypto.subtle.verify({ name: 'Ed25519' }, key, bytes(hello.signature), new Uint8Array(signed)));
    if (!this.helloVerified || this.#options.refuseHello === true) {
      this.send({ v: PROTOCOL_VERSION, type: 'error', error: { code: 'UNAUTHORIZED', message: 'Bad hello signature.' }, fatal: true });
      this.close(4001, 'unauthorized');
      return;
    }
    this.hpkeKey = hello.hpkeKey;
    this.contributorId = toB64url(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes(hello.identityKey)))).slice(0, 22);
    const heartbeatMs = this.#options.heartbeatMs ?? 10_000;
    this.send({
      v: PROTOCOL_VERSION,
      type: 'welcome',
      contributorId: this.contributorId,
      heartbeatMs,
      maxMessageBytes: this.#options.maxMessageBytes ?? 1_000_000,
    });
  }
}

export interface JobOptions {
  jobId?: string;
  attempt?: number;
  /** Seal for this attempt instead (a payload for another attempt must fail to open). */
  sealedAttempt?: number;
  /** Coordinator time, ms since the epoch. */
  deadline?: number;
}

export interface SentJob {
  jobId: string;
  leaseId: string;
  /** The requester's result key pair. */
  requester: CryptoKeyPair;
}

export interface FakeCoordinatorOptions {
  heartbeatMs?: number;
  /** 1 000 000 by default: wire.ts caps `welcome.maxMessageBytes` there, below MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** Answer every hello with a fatal UNAUTHORIZED. */
  refuseHello?: boolean;
  /** The first this many sessions never answer the hello. */
  stallHandshakes?: number;
  /** The coordinator's clock runs this far ahead of the contributor's, ms. */
  clockSkewMs?: number;
}

/** Accepts contributor sockets; each becomes a {@link FakeSession}. */
export class FakeCoordinator {
  readonly sessions: FakeSession[] = [];
  readonly options: FakeCoordinatorOptions;
  /** Local time each session's socket was accepted, ms. */
  readonly acceptedAt: number[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(options: FakeCoordinatorOptions = {}) {
    this.options = options;
  }

  accept(socket: PeerSocket): FakeSession {
    const session = new FakeSession(socket, this.options, this.sessions.length < (this.options.stallHandshakes ?? 0));
    this.sessions.push(session);
    this.acceptedAt.push(Date.now());
    for (const wake of [...this.#waiters]) wake();
    return session;
  }

  /** The `index`th session (from 0), once it has been accepted. */
  session(index: number, timeoutMs = 20_000): Promise<FakeSession> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.sessions[index];
        if (found === undefined) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`No session ${index} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}

function bytes(b64url: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(fromB64url(b64url));
}
