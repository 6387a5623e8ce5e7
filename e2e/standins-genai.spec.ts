/**
 * The decoder stand-in laid out as ONNX Runtime GenAI exports it (rotary inside
 * GroupQueryAttention, packed QKV, no `position_ids`) in Chromium: onnxruntime-web on WASM and
 * on WebGPU (SwiftShader), its greedy tokens checked against the float64 implementation of
 * the architecture (modelhost/reference.ts), which reads no onnxruntime.
 */
import { Template } from '@huggingface/jinja';
import { STANDIN_IDS, standinModels } from '../modelhost/models/index.ts';
import { QwenStandinReference } from '../modelhost/reference.ts';
import { standinTokenizer } from '../modelhost/standin-reference.ts';
import { expect, runJob, test } from './fixtures.ts';

test('the GenAI-layout decoder stand-in runs in the browser on WASM and WebGPU as the float64 reference computes it', async ({ app }) => {
  test.setTimeout(420_000);
  const id = STANDIN_IDS.decoderQ4RotaryInAttention;
  const built = standinModels().find((m) => m.id === id);
  if (built === undefined) throw new Error(`no stand-in ${id}`);
  const messages = [{ role: 'user' as const, content: 'Say something.' }];
  const config = JSON.parse(new TextDecoder().decode(built.files.get('tokenizer_config.json'))) as {
    chat_template: string;
    eos_token: string;
  };
  const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
  const prompt = standinTokenizer(built).encode(rendered, { add_special_tokens: false }).ids;
  const reference = new QwenStandinReference(built);
  const eos = built.entry.onnx.decoder?.eosTokenIds ?? [];
  const expected = reference.greedy(prompt, 6, eos);
  expect(expected.tokens).toHaveLength(6);
  // Clear of ties: float32 kernels may not change a greedy choice.
  expect(expected.minMargin).toBeGreaterThan(1e-2);

  const job = { kind: 'chat' as const, model: id, messages, sampling: { temperature: 0, topP: 1, seed: 0 } };
  const wasm = await runJob(app, { ...job, maxTokens: 6 }, { worker: 'wasm' });
  if (!wasm.ok) throw new Error(`WASM chat failed: ${wasm.error.message}`);
  expect(wasm.outcome.backend).toBe('wasm');
  expect(wasm.outcome.result.kind === 'chat' ? wasm.outcome.result.tokens : null).toEqual(expected.tokens);

  // WebGPU on SwiftShader is slow at a 152k vocabulary: fewer steps.
  const gpu = await runJob(app, { ...job, maxTokens: 3 });
  if (!gpu.ok) throw new Error(`WebGPU chat failed: ${gpu.error.message}`);
  expect(gpu.outcome.backend).toBe('webgpu');
  expect(gpu.outcome.result.kind === 'chat' ? gpu.outcome.result.tokens : null).toEqual(expected.tokens.slice(0, 3));
});
