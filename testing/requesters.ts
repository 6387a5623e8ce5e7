/**
 * Test support (not used by the app) for requester-side tests on the real coordinator: a raw
 * requester-channel socket, and an honest Node contributor running `tiny-embed` from the
 * float64 reference with a payout wallet.
 */
import type { IncomingMessage } from 'node:http';
import { expect, vi } from 'vitest';
import { WebSocket } from 'ws';
import { referenceEmbed } from '../modelhost/reference.ts';
import type { JobResult } from '../protocol/jobs.ts';
import { type ChannelMessage, REQUESTER_CHANNEL_PATH } from '../protocol/requester-channel.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import type { PaidNetwork } from './billing.ts';
import { EmbedRuntime, testWallet } from './verification.ts';

/** What a test runs after it, last first. */
export type Cleanups = (() => Promise<void> | void)[];

/** A raw channel socket: its messages in order, and a way to wait for the next of a type. */
export class RawChannel {
  readonly messages: ChannelMessage[] = [];
  #read = 0;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse((data as Buffer).toString('utf8')) as ChannelMessage));
  }

  /** Opens a socket with `auth` (null: none); a refused upgrade gives the HTTP answer instead. */
  static connect(url: string, auth: string | null, cleanups: Cleanups): Promise<RawChannel | { status: number; body: string }> {
    const headers = auth === null ? {} : { authorization: auth };
    const ws = new WebSocket(url.replace(/^http/, 'ws') + REQUESTER_CHANNEL_PATH, { headers });
    cleanups.push(() => ws.terminate());
    return new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('open', () => resolve(new RawChannel(ws)));
      ws.once('error', reject);
    });
  }

  /** A socket that must open, past its `ready`. */
  static async open(url: string, auth: string, cleanups: Cleanups): Promise<RawChannel> {
    const opened = await RawChannel.connect(url, auth, cleanups);
    if (!(opened instanceof RawChannel)) throw new Error(`channel refused: ${opened.status} ${opened.body}`);
    await opened.next('ready');
    return opened;
  }

  /** Sends `message` as JSON (a string as it is). */
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message (after those already read) of `type`; skips others. */
  async next<T extends ChannelMessage['type']>(type: T): Promise<Extract<ChannelMessage, { type: T }>> {
    for (;;) {
      await vi.waitFor(() => expect(this.messages.length).toBeGreaterThan(this.#read), { timeout: 20_000 });
      const m = this.messages[this.#read++] as ChannelMessage;
      if (m.type === type) return m as Extract<ChannelMessage, { type: T }>;
    }
  }

  /** Messages of `type` received so far about `jobId`. */
  about(jobId: string, type: ChannelMessage['type']): ChannelMessage[] {
    return this.messages.filter((m) => m.type === type && 'jobId' in m && m.jobId === jobId);
  }
}

/** A Node contributor running tiny-embed for real (`slots` at once), welcomed, with a payout wallet bound; stopped by `cleanups`. */
export async function embedContributor(net: PaidNetwork, cleanups: Cleanups, slots?: number): Promise<Contributor> {
  const c = new Contributor({
    coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime: new EmbedRuntime(),
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent: ['embed'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
    ...(slots !== undefined && { slots }),
  });
  cleanups.push(() => c.stop({ drain: false }));
  c.start();
  await vi.waitFor(() => expect(c.status().contributorId).not.toBeNull(), { timeout: 20_000 });
  await net.bind(c.status().contributorId ?? '', testWallet());
  return c;
}

/** An embed result equal to the float64 reference of `inputs`: within float32 rounding of each component. */
export function expectReferenceEmbeddings(result: JobResult, inputs: string[]): void {
  if (result.kind !== 'embed') throw new Error(`expected an embed result, got ${result.kind}`);
  const reference = referenceEmbed(inputs);
  expect(result.embeddings).toHaveLength(inputs.length);
  result.embeddings.forEach((vector, i) => vector.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-6)));
}
