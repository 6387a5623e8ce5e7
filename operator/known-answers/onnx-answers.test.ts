/**
 * Canaries for ONNX generation models: known answers computed by the coordinator with the
 * onnx engine on onnxruntime-node from the model host's pinned files, checked against the
 * float64 reference of the tiny decoder; then, on the real coordinator with its money side
 * (PGlite) and contributor loops over WebSockets, an honest device passes a `generate`
 * canary and one answering garbage tokens fails it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNano } from '@ton/core';
import { testModels } from '../../modelhost/models/index.ts';
import { decoderTokenizer, referenceChatPrompt, referenceGreedy } from '../../modelhost/reference.ts';
import { startModelHost } from '../../modelhost/server.ts';
import type { JobRequest, JobResult, StreamChunk } from '../../protocol/jobs.ts';
import { seededRandom } from '../../protocol/random.ts';
import { RequesterClient } from '../../requester/client.ts';
import { FakeRuntime } from '../../worker/network/fake-runtime.ts';
import { canariesChecked, newContributor, startCheckedNetwork, welcome, withFileOffPin } from '../../testing/canaries.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { DEFAULT_MIN_MARGIN, ModelFileMismatchError, onnxGenerateKnownAnswers } from './onnx-answers.ts';
import { OnnxNodeRuntime, RandomTokenRuntime } from '../../testing/decoder-runtimes.ts';

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
    await withFileOffPin(host.manifestUrl, 'tiny-decoder', async (url) => {
      await expect(onnxGenerateKnownAnswers({ manifestUrl: url, count: 2 })).rejects.toThrow(ModelFileMismatchError);
    });
  });
});

describe('a generate canary on the network', () => {
  for (const garbage of [false, true]) {
    it(
      garbage ? 'a device answering garbage tokens fails it and is quarantined' : 'an honest device passes it',
      async () => {
        const net = await startCheckedNetwork({ knownAnswers: answers });
        const contributor = await newContributor(net, new DecoderRuntime(garbage), ['generate', 'chat']);
        try {
          const key = await net.key(toNano('1'));
          const { id } = await welcome(net, contributor);
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
          await canariesChecked(verification, id, 1);
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
        const net = await startCheckedNetwork({ knownAnswers: answers });
        const runtime = garbage ? new RandomTokenRuntime(3) : await OnnxNodeRuntime.start(host.manifestUrl);
        const contributor = await newContributor(net, runtime, ['chat']);
        try {
          const key = await net.key(toNano('1'));
          const { id } = await welcome(net, contributor);
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
          await canariesChecked(verification, id, 1);
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
