/**
 * Canaries for ONNX generation models: known answers computed by the coordinator with the
 * onnx engine on onnxruntime-node from the model host's pinned files, checked against the
 * float64 reference of the tiny decoder; then, on the real coordinator with its money side
 * (PGlite) and contributor loops over WebSockets, an honest device passes a `generate`
 * canary and one answering garbage tokens fails it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { testModels } from '../../modelhost/models/index.ts';
import { decoderTokenizer, referenceChatPrompt, referenceGreedy } from '../../modelhost/reference.ts';
import { startModelHost } from '../../modelhost/server.ts';
import type { JobRequest, JobResult, StreamChunk } from '../../protocol/jobs.ts';
import { seededRandom } from '../../protocol/random.ts';
import { RequesterClient } from '../../requester/client.ts';
import { Contributor } from '../../worker/network/contributor.ts';
import { FakeRuntime } from '../../worker/network/fake-runtime.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../../worker/network/identity.ts';
import { startPaidNetwork } from '../../testing/billing.ts';
import { waitFor } from '../../coordinator/store/testing.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { DEFAULT_MIN_MARGIN, ModelFileMismatchError, onnxGenerateKnownAnswers } from './onnx-answers.ts';
import { OnnxNodeRuntime, RandomTokenRuntime } from '../../testing/decoder-runtimes.ts';
import { testWallet } from '../../testing/verification.ts';

const EOS = testModels().decoder.entry.onnx.decoder?.eosTokenIds ?? [];

/** Runs `tiny-decoder` generate jobs from the float64 reference (honest) or answers random tokens of the same count (garbage). */
class DecoderRuntime extends FakeRuntime {
  readonly #garbage: boolean;
  readonly #random = seededRandom(5);
  constructor(garbage: boolean) {
    super();
    this.#garbage = garbage;
  }

  override async run(
    request: unknown,
    options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {},
  ): Promise<{ result: JobResult }> {
    const job = request as JobRequest;
    if (job.kind !== 'generate' || job.model !== 'tiny-decoder' || typeof job.prompt === 'string') return super.run(request, options);
    const honest = referenceGreedy(job.prompt, job.maxTokens, EOS);
    const tokens = this.#garbage ? honest.tokens.map(() => 3 + Math.floor(this.#random() * 200)) : honest.tokens;
    return {
      result: {
        kind: 'generate',
        tokens,
        finishReason: honest.finishReason,
        usage: { promptTokens: job.prompt.length, completionTokens: tokens.length },
      },
    };
  }

  override async models(): ReturnType<FakeRuntime['models']> {
    return (await super.models()).map((m) => (m.id === 'embed-model' ? { ...m, id: 'tiny-decoder', cached: true } : m));
  }
}

let host: Awaited<ReturnType<typeof startModelHost>>;
let answers: KnownAnswer[];

beforeAll(async () => {
  host = await startModelHost({ port: 0 });
  const started = Date.now();
  answers = await onnxGenerateKnownAnswers({ manifestUrl: host.manifestUrl, count: 8 });
  console.log(`8 tiny-decoder known answers in ${Date.now() - started} ms`);
}, 120_000);
afterAll(async () => {
  await host.close();
});

describe('known answers of ONNX generation models', () => {
  it('are the greedy continuations the float64 reference computes, for prompts drawn from the corpus', () => {
    const decoderAnswers = answers.filter((a) => a.request.model === 'tiny-decoder' && a.request.kind === 'generate');
    expect(decoderAnswers).toHaveLength(8);
    for (const { request, expected } of decoderAnswers) {
      if (request.kind !== 'generate' || expected.kind !== 'generate' || typeof request.prompt === 'string')
        throw new Error('not a generate answer with token ids');
      const reference = referenceGreedy(request.prompt, request.maxTokens, EOS);
      expect(expected.tokens).toEqual(reference.tokens);
      expect(expected.usage).toEqual({ promptTokens: request.prompt.length, completionTokens: reference.tokens.length });
      expect(decoderTokenizer().decode(request.prompt)).toMatch(/^[a-z ]+$/);
      // No near tie anywhere in the run: an honest device of another backend gives the same tokens.
      expect(reference.minMargin).toBeGreaterThanOrEqual(DEFAULT_MIN_MARGIN - 1e-3);
    }
    // Drawn, not fixed: the prompts differ.
    expect(new Set(decoderAnswers.map((a) => JSON.stringify(a.request))).size).toBeGreaterThan(1);
  });

  it('include chat answers under the model’s chat template, equal to the reference’s and clear of near ties', () => {
    const chats = answers.filter((a) => a.request.model === 'tiny-decoder' && a.request.kind === 'chat');
    expect(chats).toHaveLength(8);
    for (const { request, expected } of chats) {
      if (request.kind !== 'chat' || expected.kind !== 'chat') throw new Error('not a chat answer');
      const prompt = decoderTokenizer().encode(referenceChatPrompt(request.messages), { add_special_tokens: false }).ids;
      const reference = referenceGreedy(prompt, request.maxTokens, EOS);
      expect(expected.tokens).toEqual(reference.tokens);
      expect(expected.text).toBe(decoderTokenizer().decode(reference.tokens, { skip_special_tokens: true }));
      expect(expected.usage.promptTokens).toBe(prompt.length);
      expect(reference.minMargin).toBeGreaterThanOrEqual(DEFAULT_MIN_MARGIN - 1e-3);
    }
  });

  it('drop prompts whose greedy run nearly ties: with a margin no run clears, none are kept', async () => {
    const none = await onnxGenerateKnownAnswers({ manifestUrl: host.manifestUrl, count: 2, maxTokens: 4, minMargin: 1e9 });
    expect(none).toEqual([]);
  });

  it('are cached: a second call computes nothing and returns the same answers', async () => {
    const started = Date.now();
    const again = await onnxGenerateKnownAnswers({ manifestUrl: host.manifestUrl, count: 8 });
    expect(again).toEqual(answers);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('are never computed from a file off its SHA-256 pin', async () => {
    const manifest = (await (await fetch(host.manifestUrl)).json()) as { models: { id: string; files: { sha256: string }[] }[] };
    const decoder = manifest.models.find((m) => m.id === 'tiny-decoder');
    const file = decoder?.files[0];
    if (file === undefined) throw new Error('no tiny-decoder in the manifest');
    file.sha256 = file.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const server = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(manifest)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/manifest.json`;
      await expect(onnxGenerateKnownAnswers({ manifestUrl: url, count: 2 })).rejects.toThrow(ModelFileMismatchError);
    } finally {
      server.close();
    }
  });
});

describe('a generate canary on the network', () => {
  for (const garbage of [false, true]) {
    it(
      garbage ? 'a device answering garbage tokens fails it and is quarantined' : 'an honest device passes it',
      async () => {
        const net = await startPaidNetwork('PGlite', {
          policy: {
            canaryRate: 1,
            probationCanaryRate: 1,
            baseReplicationRate: 0,
            minReplicationRate: 0,
            quarantineAfter: 1,
            benchFirstFailure: false,
          },
          knownAnswers: answers,
        });
        const contributor = new Contributor({
          coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
          runtime: new DecoderRuntime(garbage),
          identity: await loadOrCreateIdentity(new MemoryKeyStore()),
          consent: ['generate', 'chat'],
          client: { name: 'test', version: '0.0.0' },
          webSocket: WebSocket,
        });
        try {
          await net.money.fund(net.money.budgetMemo, toNano('10'));
          await net.money.billing.refreshBudget();
          const key = await net.key(toNano('1'));
          contributor.start();
          await waitFor(async () => contributor.status().contributorId !== null);
          const id = contributor.status().contributorId ?? '';
          await net.bind(id, testWallet());
          const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
          const prompt = decoderTokenizer().encode('<|user|>hi\n<|assistant|>').ids;
          const result = await requester.run({
            kind: 'generate',
            model: 'tiny-decoder',
            prompt,
            maxTokens: 8,
            sampling: { temperature: 0, topP: 1, seed: 0 },
          });
          expect(result.kind).toBe('generate');
          const verification = net.verification;
          if (verification === undefined) throw new Error('no verification');
          await waitFor(async () => {
            const { canaries } = await verification.report(id);
            return canaries.passed + canaries.failed === 1;
          }, 90_000);
          const report = await verification.report(id);
          expect(net.done.filter((d) => d.role === 'canary').map((d) => d.model)).toEqual(['tiny-decoder']);
          expect(report.canaries).toEqual(garbage ? { passed: 0, failed: 1 } : { passed: 1, failed: 0 });
          expect(report.quarantined).toBe(garbage);
          await requester.idle();
        } finally {
          await contributor.stop({ drain: false });
          await net.close();
        }
      },
      180_000,
    );
  }
});

describe('a chat canary on the network', () => {
  for (const garbage of [false, true]) {
    it(
      garbage ? 'a device answering random tokens fails it' : 'the onnx engine on onnxruntime-node passes it',
      async () => {
        const net = await startPaidNetwork('PGlite', {
          policy: {
            canaryRate: 1,
            probationCanaryRate: 1,
            baseReplicationRate: 0,
            minReplicationRate: 0,
            quarantineAfter: 1,
            benchFirstFailure: false,
          },
          knownAnswers: answers,
        });
        const runtime = garbage ? new RandomTokenRuntime(3) : await OnnxNodeRuntime.start(host.manifestUrl);
        const contributor = new Contributor({
          coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
          runtime,
          identity: await loadOrCreateIdentity(new MemoryKeyStore()),
          consent: ['chat'],
          client: { name: 'test', version: '0.0.0' },
          webSocket: WebSocket,
        });
        try {
          await net.money.fund(net.money.budgetMemo, toNano('10'));
          await net.money.billing.refreshBudget();
          const key = await net.key(toNano('1'));
          contributor.start();
          await waitFor(async () => contributor.status().contributorId !== null);
          const id = contributor.status().contributorId ?? '';
          await net.bind(id, testWallet());
          const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
          const result = await requester.run({
            kind: 'chat',
            model: 'tiny-decoder',
            messages: [{ role: 'user', content: 'hello there' }],
            maxTokens: 8,
            sampling: { temperature: 0, topP: 1, seed: 0 },
          });
          expect(result.kind).toBe('chat');
          const verification = net.verification;
          if (verification === undefined) throw new Error('no verification');
          await waitFor(async () => {
            const { canaries } = await verification.report(id);
            return canaries.passed + canaries.failed === 1;
          }, 90_000);
          expect(net.done.filter((d) => d.role === 'canary').map((d) => [d.model, d.kind])).toEqual([['tiny-decoder', 'chat']]);
          expect((await verification.report(id)).canaries).toEqual(garbage ? { passed: 0, failed: 1 } : { passed: 1, failed: 0 });
          await requester.idle();
        } finally {
          await contributor.stop({ drain: false });
          if (runtime instanceof OnnxNodeRuntime) await runtime.close();
          await net.close();
        }
      },
      180_000,
    );
  }
});
