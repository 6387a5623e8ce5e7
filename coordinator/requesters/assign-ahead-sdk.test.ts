/**
 * The requester SDK with assignments ahead of need (`assignAhead`, docs/protocol.md "Sealing
 * ahead of need") on the real coordinator with its money side and Node contributors running
 * tiny-embed: one message up per job, results equal to the float64 reference, each job charged
 * once, and a job sealed again when the contributor it was sealed for left.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { RequesterClient } from '../../requester/client.ts';
import { startPaidNetwork, type PaidNetwork } from '../../testing/billing.ts';
import { type Cleanups, embedContributor, expectReferenceEmbeddings } from '../../testing/requesters.ts';

// A paid network (PGlite, the model host, the sandbox chain) on a busy 2-core machine can take minutes.
vi.setConfig({ testTimeout: 300_000 });

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the SDK with assignments ahead of need', () => {
  /** Channel messages by type, as every WebSocket in this process sends them (the SDK's and the coordinator's). */
  function countFrames(): Map<string, number> {
    const counts = new Map<string, number>();
    const original = Reflect.get(WebSocket.prototype, 'send') as (...args: unknown[]) => void;
    const send = vi.spyOn(WebSocket.prototype, 'send').mockImplementation(function (this: WebSocket, ...args: unknown[]) {
      const [data] = args;
      const type = typeof data === 'string' ? (/^\{"v":1,"type":"([a-z-]+)"/.exec(data)?.[1] ?? null) : null;
      if (type !== null) counts.set(type, (counts.get(type) ?? 0) + 1);
      Reflect.apply(original, this, args);
    } as WebSocket['send']);
    cleanups.push(() => send.mockRestore());
    return counts;
  }

  const inputs = ['sealed before it was needed', 'one message per job'];
  const expectReference = (result: Awaited<ReturnType<RequesterClient['run']>>): void => expectReferenceEmbeddings(result, inputs);
  const charged = async (net: PaidNetwork, keyId: string): Promise<number> =>
    (
      await net.store.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM job_billing WHERE api_key_id = $1 AND state = 'charged'`, [
        keyId,
      ])
    ).rows[0]?.n ?? -1;

  /** An SDK client on the channel keeping `assignAhead` assignments in hand, of a fresh key holding 1 TON; the channel messages counted from now. */
  async function aheadClient(net: PaidNetwork, assignAhead: number) {
    const key = await net.key(toNano('1'));
    const client = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret, checkReplicas: false, channel: true, assignAhead });
    cleanups.push(() => client.close());
    return { key, client, frames: countFrames() };
  }

  it('runs many jobs at once, one message up per job, each answered once, equal to the reference and charged once', async () => {
    const net = await startPaidNetwork('PGlite');
    cleanups.push(() => net.close());
    await embedContributor(net, cleanups, 4);
    await embedContributor(net, cleanups, 4);
    const { key, client, frames } = await aheadClient(net, 8);

    // The first job is created the plain way; the batch is asked for once it has its slot.
    expectReference(await client.run({ kind: 'embed', model: 'tiny-embed', inputs }));
    await vi.waitFor(() => expect(frames.get('assignments')).toBe(1), { timeout: 20_000 });
    expect(frames.get('create')).toBe(1);
    expect(frames.get('payload')).toBe(1);

    const results = await Promise.all(Array.from({ length: 6 }, () => client.run({ kind: 'embed', model: 'tiny-embed', inputs })));
    for (const result of results) {
      expectReference(result);
      expect(result.attempts).toBe(1);
    }
    // Six jobs, six messages up: no `create`, no `payload` of their own.
    expect(frames.get('submit')).toBe(6);
    expect(frames.get('create')).toBe(1);
    expect(frames.get('payload')).toBe(1);
    await net.settled();
    expect(await charged(net, key.id)).toBe(7);
    const balance = await net.balance(key);
    expect(balance.reserved).toBe(0n);
    expect(net.done.filter((d) => d.apiKeyId === key.id)).toHaveLength(7);
  });

  it('seals again for another contributor when the one it was sealed for left, and runs the job once', async () => {
    const net = await startPaidNetwork('PGlite');
    cleanups.push(() => net.close());
    const leaving = await embedContributor(net, cleanups, 3);
    const { key, client, frames } = await aheadClient(net, 4);
    expectReference(await client.run({ kind: 'embed', model: 'tiny-embed', inputs }));
    await vi.waitFor(() => expect(frames.get('assignments')).toBe(1), { timeout: 20_000 });

    // The assignments in hand are all on the contributor that now leaves; another joins.
    const gone = leaving.status().contributorId;
    await leaving.stop({ drain: false });
    await vi.waitFor(() => expect(net.coordinator.stats().contributors).toBe(0), { timeout: 20_000 });
    const staying = await embedContributor(net, cleanups, 2);

    const results = await Promise.all([0, 1].map(() => client.run({ kind: 'embed', model: 'tiny-embed', inputs })));
    for (const result of results) {
      expectReference(result);
      // Attempt 1 was the lapsed assignment; attempt 2 ran on the contributor that stayed.
      expect(result.attempts).toBe(2);
    }
    expect(frames.get('submit')).toBe(2);
    expect(frames.get('payload')).toBe(1 + 2); // the first job's, then each re-sealed payload
    await net.settled();
    const ran = net.done.filter((d) => d.apiKeyId === key.id);
    expect(ran).toHaveLength(3);
    expect(ran.slice(1).map((d) => d.contributorId)).toEqual([staying.status().contributorId, staying.status().contributorId]);
    expect(ran.some((d) => d.contributorId === gone && d !== ran[0])).toBe(false);
    expect(await charged(net, key.id)).toBe(3);
    expect((await net.balance(key)).reserved).toBe(0n);
  });
});
