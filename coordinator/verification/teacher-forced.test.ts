/**
 * Generation checked by a teacher-forced score (docs/protocol.md, "Verified work", rule 4):
 * a replica device scores the primary's output tokens in one pass, and the coordinator judges
 * agreement by how many sit in the checker's top k. First on the onnx engine itself
 * (onnxruntime-node), then on the real coordinator with its money side (PGlite), contributor
 * loops over WebSockets and the requester SDK: an honest device of another backend, whose
 * tokens differ from the onnx engine's, agrees; a device answering random tokens fails as
 * primary and as checker, earns nothing, and the honest are paid exactly their shares.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceGreedy } from '../../modelhost/reference.ts';
import { testModels } from '../../modelhost/models/index.ts';
import { startModelHost } from '../../modelhost/server.ts';
import { compareTokens } from '../../protocol/compare.ts';
import type { GenerateRequest, JobResult } from '../../protocol/jobs.ts';
import { judgeScored, positionsOf, ranksWithin, scoreRequestFor } from '../../protocol/teacher-forced.ts';
import { RequesterClient, type ReplicaCheck } from '../../requester/client.ts';
import { Contributor } from '../../worker/network/contributor.ts';
import type { FakeRuntime } from '../../worker/network/fake-runtime.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../../worker/network/identity.ts';
import { type PaidNetwork, startPaidNetwork } from '../../testing/billing.ts';
import type { JobDone } from '../leases/relay.ts';
import { waitFor } from '../store/testing.ts';
import { OnnxNodeRuntime, otherBackendGreedy, OtherBackendRuntime, RandomTokenRuntime } from '../../testing/decoder-runtimes.ts';
import { testWallet } from '../../testing/verification.ts';

const EOS = testModels().decoder.entry.onnx.decoder?.eosTokenIds ?? [];
const MAX_TOKENS = 8;
const prompts = DECODER_TEST_PROMPTS.map((p) => decoderTokenizer().encode(p).ids);
const request = (prompt: number[]): GenerateRequest => ({
  kind: 'generate',
  model: 'tiny-decoder',
  prompt,
  maxTokens: MAX_TOKENS,
  sampling: { temperature: 0, topP: 1, seed: 0 },
});
/** `tiny-decoder` in prices.json: 1 000 nanoTON a prompt token, 3 000 an output token, 10 % commission (rounded half up). */
const share = (u: { promptTokens: number; completionTokens: number }): bigint => {
  const gross = BigInt(u.promptTokens) * 1_000n + BigInt(u.completionTokens) * 3_000n;
  return gross - (gross * 1_000n + 5_000n) / 10_000n;
};

let host: Awaited<ReturnType<typeof startModelHost>>;
let onnx: OnnxNodeRuntime;
beforeAll(async () => {
  host = await startModelHost({ port: 0 });
  onnx = await OnnxNodeRuntime.start(host.manifestUrl);
}, 120_000);
afterAll(async () => {
  await onnx.close();
  await host.close();
});

describe('the teacher-forced score on the onnx engine', () => {
  const score = async (prompt: number[], result: JobResult) => {
    const check = scoreRequestFor(request(prompt), result);
    if (check === null) throw new Error('no score request');
    const { result: scored } = await onnx.run(check);
    if (scored.kind !== 'score') throw new Error(`scored as ${scored.kind}`);
    return judgeScored(scored, positionsOf(check.output.length, check.stopped));
  };
  const generate = (prompt: number[], tokens: number[], finishReason: 'stop' | 'length'): JobResult => ({
    kind: 'generate',
    tokens,
    finishReason,
    usage: { promptTokens: prompt.length, completionTokens: tokens.length },
  });

  it('passes the greedy output and another backend flipping a near tie, and fails random tokens', async () => {
    let differ = 0;
    for (const prompt of prompts) {
      const greedy = referenceGreedy(prompt, MAX_TOKENS, EOS);
      expect(await score(prompt, generate(prompt, greedy.tokens, greedy.finishReason))).toMatchObject({ agree: true, score: 1 });
      const other = otherBackendGreedy(prompt, MAX_TOKENS);
      // Exact comparison would call this honest run wrong; scored against its own prefix, every token is likely.
      if (!compareTokens(other.tokens, greedy.tokens).agree) differ++;
      expect(await score(prompt, generate(prompt, other.tokens, other.finishReason))).toMatchObject({ agree: true });
      const vocab = testModels().decoder.entry.onnx.decoder?.vocabSize ?? 0;
      const random = greedy.tokens.map((_, i) => 3 + ((prompt.length * 7919 + i * 104_729) % (vocab - 3)));
      const judged = await score(prompt, generate(prompt, random, 'length'));
      expect(judged.agree).toBe(false);
      expect(judged.score).toBeLessThan(0.5);
    }
    expect(differ).toBe(prompts.length);
  });

  it('counts a token outside the top k within the margin of the k-th best, and no further', () => {
    const row = [5, 4, 3, 2.8, 1];
    expect(ranksWithin(row, 2, 3, 0)).toBe(true);
    expect(ranksWithin(row, 3, 3, 0)).toBe(false);
    expect(ranksWithin(row, 3, 3, 0.25)).toBe(true);
    expect(ranksWithin(row, 4, 3, 0.25)).toBe(false);
    expect(ranksWithin([1, Number.NaN], 1, 1, 8)).toBe(false);
  });

  it('refuses a count that skips positions or exceeds them', () => {
    expect(judgeScored({ positions: 8, inTopK: 8 }, 9).agree).toBe(false);
    expect(judgeScored({ positions: 8, inTopK: 9 }, 8).agree).toBe(false);
    expect(judgeScored({ positions: 20, inTopK: 19 }, 20).agree).toBe(true);
    expect(judgeScored({ positions: 20, inTopK: 18 }, 20).agree).toBe(false);
  });
});

/** Every job replicated, no canaries; one failed check quarantines. */
const REPLICATE_ALL = {
  canaryRate: 0,
  probationCanaryRate: 0,
  baseReplicationRate: 1,
  minReplicationRate: 1,
  decayPerCleanJob: 1,
  quarantineAfter: 1,
  benchFirstFailure: false,
};

async function device(net: PaidNetwork, runtime: FakeRuntime): Promise<{ contributor: Contributor; id: string; wallet: string }> {
  const contributor = new Contributor({
    coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent: ['generate'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
  });
  contributor.start();
  await waitFor(async () => contributor.status().contributorId !== null);
  const id = contributor.status().contributorId ?? '';
  const wallet = testWallet();
  await net.bind(id, wallet);
  return { contributor, id, wallet };
}

async function run(net: PaidNetwork, runtimes: FakeRuntime[], jobs: number) {
  await net.money.fund(net.money.budgetMemo, toNano('10'));
  await net.money.billing.refreshBudget();
  const key = await net.key(toNano('1'));
  const devices = [];
  for (const r of runtimes) devices.push(await device(net, r));
  const checks: ReplicaCheck[] = [];
  const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret, onCheck: (c) => checks.push(c) });
  try {
    // Two at a time, so that each device runs primaries and checks the other's.
    for (let i = 0; i < jobs; i += 2) {
      await Promise.all([i, i + 1].map((j) => requester.run(request(prompts[j % prompts.length] ?? []))));
      await requester.idle();
    }
    await net.verification?.idle();
    await net.settled();
  } finally {
    for (const d of devices) await d.contributor.stop({ drain: false });
  }
  return { key, devices, checks };
}

/** The exact shares `done` jobs of `contributorId` earned; checks are paid their scored prompt only (the envelope's input). */
function shares(done: readonly JobDone[], contributorId: string): bigint {
  return done.filter((d) => d.contributorId === contributorId).reduce((n, d) => n + share(d.usage), 0n);
}

describe('replicas of generation on the network', () => {
  it('an honest device of another backend agrees with the onnx engine, and both are paid exactly their shares', async () => {
    const net = await startPaidNetwork('PGlite', { policy: REPLICATE_ALL });
    try {
      const other = new OtherBackendRuntime();
      const { devices, checks } = await run(net, [onnx, other], 6);
      expect(checks).toHaveLength(6);
      for (const c of checks) expect(c).toMatchObject({ agree: true, reason: expect.stringContaining('most likely') as string });
      const byId = new Map(net.done.map((d) => [d.jobId, d]));
      // Both devices checked and were checked: the other backend's outputs differ from the onnx engine's greedy ones.
      const primaries = net.done.filter((d) => d.role === 'job');
      expect(new Set(primaries.map((d) => d.contributorId)).size).toBe(2);
      for (const c of checks) {
        const replica = byId.get(c.replicaJobId);
        const primary = byId.get(c.jobId);
        expect(replica?.role).toBe('replica');
        // A score check claims the prompt and the scored output as input; it is paid the envelope's input, no output.
        expect(replica?.usage).toEqual({ promptTokens: primary?.usage.promptTokens, completionTokens: 0 });
      }
      expect(other.ran.filter((k) => k === 'score').length).toBeGreaterThan(0);
      expect(onnx.ran.filter((k) => k === 'score').length).toBeGreaterThan(0);
      for (const d of devices) {
        expect((await net.verification?.report(d.id))?.reputation.failed).toBe(0);
        expect(await net.pending(d.wallet)).toBe(shares(net.done, d.id));
        expect(await net.pending(d.wallet)).toBeGreaterThan(0n);
      }
      expect(await net.penalties()).toBe(0n);
    } finally {
      onnx.ran.length = 0;
      await net.close();
    }
  }, 180_000);

  it('a device answering random tokens fails as primary and as checker, earns nothing, and the honest lose nothing', async () => {
    const net = await startPaidNetwork('PGlite', { policy: REPLICATE_ALL });
    try {
      const cheat = new RandomTokenRuntime(11);
      const { key, devices, checks } = await run(net, [onnx, new OtherBackendRuntime(), cheat], 6);
      const [o, b, g] = devices;
      if (o === undefined || b === undefined || g === undefined) throw new Error('three devices');
      const byId = new Map(net.done.map((d) => [d.jobId, d]));
      const involved = checks.filter((c) => [c.jobId, c.replicaJobId].some((id) => byId.get(id)?.contributorId === g.id));
      expect(involved.length).toBeGreaterThan(0);
      for (const c of checks) {
        if (!involved.includes(c)) {
          expect(c.agree).toBe(true);
          continue;
        }
        const cheatPrimary = byId.get(c.jobId)?.contributorId === g.id;
        expect(c.agree).toBe(false);
        // The third device sides with the honest one.
        expect(c.tieBreak).toMatchObject({ withPrimary: !cheatPrimary, withReplica: cheatPrimary });
        expect(byId.get(c.tieBreak?.jobId ?? '')?.contributorId).not.toBe(g.id);
      }
      expect((await net.verification?.report(g.id))?.quarantined).toBe(true);
      expect(await net.pending(g.wallet)).toBe(0n);
      expect(await net.penalties()).toBe(shares(net.done, g.id));
      expect(await net.penalties()).toBeGreaterThan(0n);
      for (const d of [o, b]) {
        expect((await net.verification?.report(d.id))?.reputation.failed).toBe(0);
        expect(await net.pending(d.wallet)).toBe(shares(net.done, d.id));
      }
      // The requester paid each of its jobs once, whoever ran it; checks came out of the budget.
      const gross = net.done
        .filter((d) => d.role === 'job')
        .reduce((n, d) => n + BigInt(d.usage.promptTokens) * 1_000n + BigInt(d.usage.completionTokens) * 3_000n, 0n);
      expect(gross).toBeGreaterThan(0n);
      expect(await net.balance(key)).toEqual({ available: toNano('1') - gross, reserved: 0n });
    } finally {
      onnx.ran.length = 0;
      await net.close();
    }
  }, 180_000);
});
