/**
 * The raw baseline of the dispatch benchmark: a plain `ws` server and the same number of
 * `ws` clients exchanging messages of the protocol's sizes — a job-frame-sized message out,
 * a chunk-frame-sized message back — with one message in flight per slot and as many slots
 * in flight as the coordinator run had requester lanes. No JSON, no validation, no HTTP,
 * no store: what the sockets alone allow on this machine.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { epochMs, pool, Samples, sleep, type LatencySummary, withTimeout } from './stats.ts';

export interface EchoRunOptions {
  /** Messages in flight at once, over all clients. */
  inflight: number;
  /** Messages in flight per client at most (its slots). */
  slots: number;
  /** Size of each message the server sends (a job frame), bytes. */
  jobFrameBytes: number;
  warmupMs: number;
  windowMs: number;
  /** Hard cap on messages sent. */
  maxMessages: number;
}

export interface EchoResult {
  clients: number;
  inflight: number;
  /** Round trips completed inside the window. */
  completed: number;
  messagesPerSecond: number;
  /** Server send → reply received, ms. */
  roundTrip: LatencySummary;
}

export interface EchoServer {
  url: string;
  /** Connected clients. */
  readonly connected: number;
  run(options: EchoRunOptions): Promise<EchoResult>;
  close(): Promise<void>;
}

/** Starts the echo server on 127.0.0.1 (a free port). */
export async function startEchoServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => wss.once('listening', resolve).once('error', reject));
  const sockets: WebSocket[] = [];
  /** Send times of the messages in flight on each socket, oldest first (replies come in order). */
  const inFlight = new Map<WebSocket, number[]>();
  let onReply: (ws: WebSocket) => void = () => {};
  wss.on('connection', (ws) => {
    sockets.push(ws);
    inFlight.set(ws, []);
    ws.on('message', () => onReply(ws));
    ws.on('error', () => {});
  });
  const port = (wss.address() as AddressInfo).port;

  return {
    url: `ws://127.0.0.1:${port}`,
    get connected() {
      return sockets.length;
    },
    async run(o) {
      const frame = 'j'.repeat(o.jobFrameBytes);
      const free: WebSocket[] = [];
      for (let s = 0; s < o.slots; s++) free.push(...sockets);
      const windowStart = epochMs() + o.warmupMs;
      const windowEnd = windowStart + o.windowMs;
      const roundTrip = new Samples();
      let sent = 0;
      let outstanding = 0;
      let completed = 0;
      let head = 0;
      const sendNext = (): void => {
        if (head >= free.length || sent >= o.maxMessages || epochMs() >= windowEnd) return;
        const ws = free[head++];
        if (ws === undefined) return;
        // Compact the queue now and then instead of shifting on every message.
        if (head > 65_536) {
          free.splice(0, head);
          head = 0;
        }
        sent++;
        outstanding++;
        inFlight.get(ws)?.push(epochMs());
        ws.send(frame);
      };
      onReply = (ws) => {
        const now = epochMs();
        const sentAt = inFlight.get(ws)?.shift() ?? now;
        outstanding--;
        if (now >= windowStart && now < windowEnd) {
          completed++;
          roundTrip.add(now - sentAt);
        }
        free.push(ws);
        sendNext();
      };
      for (let i = 0; i < o.inflight; i++) sendNext();
      const until = windowEnd + 5_000;
      while ((epochMs() < windowEnd || outstanding > 0) && epochMs() < until) await sleep(20);
      onReply = () => {};
      return {
        clients: sockets.length,
        inflight: Math.min(o.inflight, sockets.length * o.slots),
        completed,
        messagesPerSecond: completed / (o.windowMs / 1000),
        roundTrip: roundTrip.summary(),
      };
    },
    async close() {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** `count` raw clients that answer every message with one `replyBytes`-byte message. */
export class EchoClients {
  readonly #sockets: WebSocket[] = [];

  static async connect(url: string, count: number, replyBytes: number, parallel = 64): Promise<EchoClients> {
    const clients = new EchoClients();
    const reply = 'c'.repeat(replyBytes);
    await pool(count, parallel, async () => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      clients.#sockets.push(ws);
      ws.on('message', () => ws.send(reply));
      ws.on('error', () => {});
      await withTimeout(
        new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject)),
        10_000,
        'opening an echo socket',
      );
    });
    return clients;
  }

  async close(timeoutMs = 5_000): Promise<void> {
    const closed = this.#sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          ws.once('close', () => resolve());
          ws.close();
        }),
    );
    await withTimeout(Promise.all(closed), timeoutMs, 'closing echo sockets').catch(() => {
      for (const ws of this.#sockets) ws.terminate();
    });
    this.#sockets.length = 0;
  }
}
