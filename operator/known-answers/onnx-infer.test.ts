/**
 * Canaries for ONNX `infer` models: known answers computed by the coordinator with the onnx
 * engine on onnxruntime-node from the model host's pinned files, checked against the float64
 * reference of `tiny-q4`; the tensor tolerance; then, on the real coordinator with its money
 * side (PGlite) and contributor loops over WebSockets, a device running the onnx engine passes
 * an `infer` canary and one perturbing its tensors fails it, is quarantined, and keeps nothing
 * it had not been checked for. Prices are prices.json's: `tiny-embed` costs 1 000 nanoTON per
 * input token with 10 % commission; `tiny-q4` has no price (an `infer` job counts no tokens).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toNano } from '@ton/core';
import { referenceQ4 } from '../../modelhost/reference.ts';
import { startModelHost } from '../../modelhost/server.ts';
import { compareResults } from '../../protocol/compare.ts';
import type { JobRequest, JobResult, StreamChunk } from '../../protocol/jobs.ts';
import { type OnnxModel, parseManifest } from '../../protocol/manifest.ts';
import { seededRandom } from '../../protocol/random.ts';
import { RequesterClient } from '../../requester/client.ts';
import type { LoadedModel } from '../../worker/engines/types.ts';
import { canariesChecked, newContributor, startCheckedNetwork, welcome, withFileOffPin } from '../../testing/canaries.ts';
import { waitFor } from '../../coordinator/store/testing.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { MAX_FREE_DIM, onnxInferKnownAnswers } from './onnx-infer-answers.ts';
import { fetchModelFiles, loadOnnxNode, ModelFileMismatchError } from './onnx-node.ts';
import { EmbedRuntime } from '../../testing/verification.ts';

const rows = (t: { dims: number[]; data: number[] }): number[][] =>
  Array.from({ length: t.dims[0] ?? 0 }, (_, i) => t.data.slice(i * (t.dims[1] ?? 0), (i + 1) * (t.dims[1] ?? 0)));

/** Honest `tiny-embed` from the reference; `tiny-q4` on the onnx engine, its outputs perturbed when `perturb` is set. */
class InferRuntime extends EmbedRuntime {
  readonly #loaded: LoadedModel;
  readonly #perturb: number;
  readonly #random = seededRandom(11);
  constructor(loaded: LoadedModel, perturb: number) {
    super();
    this.#loaded = loaded;
    this.#perturb = perturb;
  }

  override async run(request: unknown, options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {}) {
    const job = request as JobRequest;
    if (job.kind !== 'infer' || job.model !== 'tiny-q4') return super.run(request, options);
    const result = await this.#loaded.run(job);
    if (result.kind !== 'infer' || this.#perturb === 0) return { result };
    // Each value moved by `perturb` of the tensor's scale, up or down at random.
    const outputs = Object.fromEntries(
      Object.entries(result.outputs).map(([name, t]) => {
        const scale = Math.max(...t.data.map(Math.abs));
        return [name, { ...t, data: t.data.map((x) => x + (this.#random() < 0.5 ? -1 : 1) * this.#perturb * scale) }];
      }),
    );
    return { result: { ...result, outputs } satisfies JobResult };
  }

  override async models(): ReturnType<EmbedRuntime['models']> {
    const list = await super.models();
    const embed = list.find((m) => m.id === 'tiny-embed');
    return embed === undefined ? list : [...list, { ...embed, id: 'tiny-q4', cached: true }];
  }
}

let host: Awaited<ReturnType<typeof startModelHost>>;
let answers: KnownAnswer[];

beforeAll(async () => {
  host = await startModelHost({ port: 0 });
  answers = await onnxInferKnownAnswers({ manifestUrl: host.manifestUrl, count: 8 });
}, 120_000);
afterAll(async () => {
  await host.close();
});

describe('known answers of ONNX infer models', () => {
  it('are what the float64 reference of tiny-q4 computes, for float32 inputs drawn in the declared shape', () => {
    expect(answers).toHaveLength(8);
    for (const { request, expected } of answers) {
      if (request.kind !== 'infer' || expected.kind !== 'infer') throw new Error('not an infer answer');
      expect(request.model).toBe('tiny-q4');
      expect(Object.keys(request.inputs)).toEqual(['x']);
      const x = request.inputs['x'];
      if (x === undefined) throw new Error('no x');
      const [batch, k] = x.dims;
      expect(k).toBe(64);
      expect(batch).toBeGreaterThanOrEqual(1);
      expect(batch).toBeLessThanOrEqual(MAX_FREE_DIM);
      expect(x.data).toHaveLength((batch ?? 0) * 64);
      for (const v of x.data) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThan(1);
        expect(Math.fround(v)).toBe(v);
      }
      const y = expected.outputs['y'];
      if (y === undefined) throw new Error('no y');
      expect(y.dims).toEqual([batch, 32]);
      const reference = referenceQ4(rows(x));
      const scale = Math.max(...reference.flat().map(Math.abs));
      rows(y).forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-5 * scale)));
      expect(expected.usage).toEqual({ promptTokens: 0, completionTokens: 0 });
    }
    // Drawn, not fixed: the inputs differ.
    expect(new Set(answers.map((a) => JSON.stringify(a.request))).size).toBe(8);
  });

  it('are cached: a second call computes nothing and returns the same answers', async () => {
    const again = await onnxInferKnownAnswers({ manifestUrl: host.manifestUrl, count: 8 });
    expect(again).toEqual(answers);
    // The very objects computed before: the run is not repeated.
    again.forEach((a, i) => expect(a).toBe(answers[i]));
  });

  it('are never computed from a file off its SHA-256 pin', async () => {
    await withFileOffPin(host.manifestUrl, 'tiny-q4', async (url) => {
      await expect(onnxInferKnownAnswers({ manifestUrl: url, count: 2 })).rejects.toThrow(ModelFileMismatchError);
    });
  });
});

describe('the tensor tolerance', () => {
  const answer = (): { expected: Extract<JobResult, { kind: 'infer' }>; reference: number[][] } => {
    const { request, expected } = answers[0] ?? { request: null, expected: null };
    if (request?.kind !== 'infer' || expected?.kind !== 'infer') throw new Error('no infer answer');
    return { expected, reference: referenceQ4(rows(request.inputs['x'] ?? { dims: [], data: [] })) };
  };
  const withY = (r: Extract<JobResult, { kind: 'infer' }>, data: number[]): JobResult => ({
    ...r,
    outputs: { y: { type: 'float32', dims: r.outputs['y']?.dims ?? [], data } },
  });

  it('passes the float64 reference and fails scaled, shifted, perturbed and non-finite tensors', () => {
    const { expected, reference } = answer();
    const y = expected.outputs['y']?.data ?? [];
    const scale = Math.max(...y.map(Math.abs));
    const agrees = (data: number[]): boolean => compareResults(withY(expected, data), expected).agree;
    expect(agrees(reference.flat())).toBe(true);
    // Cosine cannot see a scaled answer; the element error can.
    expect(agrees(y.map((v) => v * 1.05))).toBe(false);
    expect(agrees(y.map((v) => v + 0.05 * scale))).toBe(false);
    expect(agrees(y.map((v, i) => v + (i % 2 === 0 ? 0.02 : -0.02) * scale))).toBe(false);
    expect(agrees(y.map((v, i) => (i === 0 ? Number.NaN : v)))).toBe(false);
    // Within the rounding of an f16 accumulation, it passes.
    expect(agrees(y.map((v) => v + 1e-3 * scale))).toBe(true);
  });
});

describe('an infer canary on the network', () => {
  const cost = (prompt: number) => {
    const gross = BigInt(prompt) * 1_000n;
    return { gross, share: gross - gross / 10n };
  };
  for (const perturb of [0, 0.03]) {
    it(
      perturb === 0
        ? 'the onnx engine on onnxruntime-node passes it and keeps its credits'
        : 'a device perturbing its tensors fails it, is quarantined, and its unchecked credit goes to penalties',
      async () => {
        const net = await startCheckedNetwork({ knownAnswers: answers });
        const manifest = parseManifest(await (await fetch(host.manifestUrl)).json());
        const model = manifest.models.find((m): m is OnnxModel => m.id === 'tiny-q4' && m.engine === 'onnx');
        if (model === undefined) throw new Error('no tiny-q4');
        const loaded = await loadOnnxNode(model, await fetchModelFiles(model));
        const contributor = await newContributor(net, new InferRuntime(loaded, perturb), ['embed', 'infer']);
        try {
          const budgetBefore = await net.money.billing.budget();
          const funds = toNano('1');
          const key = await net.key(funds);
          const { id, wallet } = await welcome(net, contributor);
          const verification = net.verification;
          if (verification === undefined) throw new Error('no verification');
          const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
          // A paid embed job first (its canary passes: the device embeds honestly), then an infer job.
          expect((await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: ['a quiet river'] })).kind).toBe('embed');
          await canariesChecked(verification, id, 1);
          const x = { type: 'float32' as const, dims: [2, 64], data: Array.from({ length: 128 }, (_, i) => Math.sin(i)) };
          const result = await requester.run({ kind: 'infer', model: 'tiny-q4', inputs: { x } });
          if (result.kind !== 'infer') throw new Error('not an infer result');
          await canariesChecked(verification, id, 2);
          await requester.idle();
          await net.settled();
          await verification.idle();
          const report = await verification.report(id);
          expect(net.done.map((d) => [d.role, d.model])).toEqual([
            ['job', 'tiny-embed'],
            ['canary', 'tiny-embed'],
            ['job', 'tiny-q4'],
            ['canary', 'tiny-q4'],
          ]);
          const [embedJob, embedCanary] = net.done;
          if (embedJob === undefined || embedCanary === undefined) throw new Error('missing jobs');
          const job = cost(embedJob.usage.promptTokens);
          const canary = cost(embedCanary.usage.promptTokens);
          expect(report.canaries).toEqual(perturb === 0 ? { passed: 2, failed: 0 } : { passed: 1, failed: 1 });
          expect(report.quarantined).toBe(perturb !== 0);
          // The requester pays for its delivered embed job once, whatever the checks find; tiny-q4 has no price.
          expect(await net.balance(key)).toEqual({ available: funds - job.gross, reserved: 0n });
          expect(await net.money.billing.budget()).toEqual({ available: budgetBefore.available - canary.gross, reserved: 0n });
          if (perturb === 0) {
            expect(await net.pending(wallet)).toBe(job.share + canary.share);
            expect(await net.penalties()).toBe(0n);
          } else {
            // Quarantined: the unchecked embed job's credit is voided; the embed canary it passed was checked work.
            await waitFor(async () => (await net.penalties()) === job.share);
            expect(await net.pending(wallet)).toBe(canary.share);
          }
          expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
        } finally {
          await contributor.stop({ drain: false });
          await loaded.unload();
          await net.close();
        }
      },
      180_000,
    );
  }
});
