/**
 * Test support (not used by the app): bodies for the replicas' bus subjects (protocol/cluster.ts)
 * as a client that is not a replica would send them, for coordinator/cluster/nats-fuzz.test.ts.
 */
import { hostile } from '../coordinator/edges/fuzz.ts';

type Rand = () => number;
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
/** A random id of `n` base64url characters (lowercase: some fit a replica id too). */
export const id = (r: Rand, n = 12): string =>
  Array.from({ length: n }, () => pick(r, [...'abcdefghijklmnopqrstuvwxyz0123456789_-'])).join('');

/** What the bodies name: a real contributor, real jobs, a real API key. */
export interface World {
  contributorId: string;
  jobs: readonly string[];
  apiKey: string;
}

/** A well-formed body (mostly) of subject `kind` naming `sender` as the replica that sent it, and `world`'s ids where it takes ids. */
export function forged(kind: string, sender: string, world: World, r: Rand): Record<string, unknown> {
  const contributor = r() < 0.7 ? world.contributorId : id(r);
  const jobId = r() < 0.7 ? pick(r, world.jobs) : id(r);
  const lease = { jobId, leaseId: id(r) };
  switch (kind) {
    case 'alive':
      return { replica: sender, boot: id(r), serves: Array.from({ length: 256 }, (_, i) => `m${i}\nembed\n${'e'.repeat(290)}`) };
    case 'policy':
      return { replica: sender };
    case 'claim':
      return { owner: sender, jobId, model: 'tiny-embed', kind: 'embed', exclude: [], ...(r() < 0.3 && { target: contributor }) };
    case 'down': {
      const message = pick(r, [
        { v: 1, type: 'control', action: 'pause' },
        { v: 1, type: 'control', action: 'message', text: 'Your device is compromised: send your mnemonic to evil.example' },
        { v: 1, type: 'drain', reconnectAfterMs: 1_000_000 },
        { v: 1, type: 'error', error: { code: 'UNAUTHORIZED', message: 'forged' }, fatal: true },
        { v: 1, type: 'welcome', contributorId: id(r), heartbeatMs: 1, maxMessageBytes: 1 },
        { v: 1, type: 'self-test', model: 'tiny-embed', reason: 'forged' },
        { v: 1, type: 'cancel', ...lease, reason: 'forged' },
        { v: 1, type: 'ack', jobId, seq: 0, status: 'accepted' },
        {
          v: 1,
          type: 'job',
          ...lease,
          model: 'tiny-embed',
          kind: 'embed',
          attempt: 1,
          deadline: Date.now() + 60_000,
          sealed: { ct: 'AAAA' },
        },
      ]);
      return { owner: sender, contributorId: contributor, message };
    }
    case 'up': {
      const message = pick(r, [
        {
          v: 1,
          type: 'chunk',
          ...lease,
          seq: 0,
          final: true,
          sealed: { ct: 'AAAA' },
          usage: { promptTokens: 1_000_000, completionTokens: 0 },
        },
        { v: 1, type: 'fail', ...lease, error: { code: 'INVALID_INPUT', message: 'forged' } },
      ]);
      return { home: sender, contributorId: contributor, message };
    }
    case 'release':
      return { owner: sender, contributorId: contributor, slots: 1 + Math.floor(r() * 1024) };
    case 'gone':
      return { home: sender, contributorId: contributor, why: 'forged' };
    case 'holds':
      return { jobId };
    case 'call': {
      const [method, tail] = pick(r, [
        ['GET', '/events'],
        ['PUT', '/payload'],
        ['POST', '/report'],
        ['POST', '/verdict'],
        ['DELETE', ''],
        ['GET', ''],
      ] as const);
      const authorization =
        r() < 0.1 ? pick(r, ['Bearer a\u0000b', 'Bearer \u0100', 'a\r\nx-injected: 1']) : `Bearer ${r() < 0.3 ? world.apiKey : id(r, 40)}`;
      const hasBody = method === 'PUT' || method === 'POST' || r() < 0.1;
      const body = hasBody ? JSON.stringify(hostile({ attempt: 1, sealed: { ct: 'AAAA' } }, r)) : undefined;
      return {
        from: sender,
        stream: id(r),
        method,
        path: `/v1/jobs/${jobId}${tail}`,
        headers: { authorization, 'content-type': 'application/json' },
        ...(body !== undefined && { body }),
      };
    }
    case 'part':
      return { stream: id(r), seq: Math.floor(r() * 3), text: 'forged\n', ...(r() < 0.5 && { end: true }) };
    case 'stop':
      return { from: sender, stream: id(r) };
    default:
      throw new Error(`no forged body for ${kind}: add it to the fuzzer`);
  }
}

/** `body` with its longest string grown so the message is just under the server's `max_payload`. */
export function nearLimit(body: Record<string, unknown>, maxPayload: number, r: Rand): string {
  const text = JSON.stringify(body);
  const room = maxPayload - text.length - 64;
  const fill = pick(r, ['x', '\u0000', '\ud800', 'é']);
  const grown = fill.repeat(Math.max(0, Math.floor(room / (JSON.stringify(fill).length - 2))));
  const key = Object.keys(body).find((k) => typeof body[k] === 'string') ?? 'extra';
  return JSON.stringify({ ...body, [key]: grown });
}
