/**
 * Stand-ins of published model layouts through the whole network: the official `openai`
 * client → gateway → coordinator → a contributor tab in Chromium (WebGPU on SwiftShader, WASM
 * where the device lacks what a build needs), checked against onnxruntime-node on the CPU.
 */
import { Template } from '@huggingface/jinja';
import OpenAI from 'openai';
import { STANDIN_IDS, standinModels, type BuiltModel } from '../modelhost/models/index.ts';
import { referenceStandinEmbed, referenceStandinGreedy, standinTokenizer } from '../modelhost/standin-reference.ts';
import { expect, loadError, runJob, startContributing, test } from './fixtures.ts';

const gateway = (): string => {
  const url = process.env['SPINNERET_GATEWAY_URL'];
  if (url === undefined) throw new Error('SPINNERET_GATEWAY_URL is not set: run through playwright.config.ts');
  return url;
};

const model = (id: string): BuiltModel<unknown> => {
  const found = standinModels().find((m) => m.id === id);
  if (found === undefined) throw new Error(`no stand-in ${id}`);
  return found;
};

test('stand-ins of published layouts serve the OpenAI client: embeddings, chat on WebGPU, q4f16 routed to WASM', async ({ app }) => {
  // Three models, one of them on WASM with a 152k-token vocabulary: longer than one job on SwiftShader.
  test.setTimeout(420_000);
  // Loaded before contributing: on SwiftShader the first WebGPU steps compile shaders for longer than a lease waits.
  expect(await loadError(app, STANDIN_IDS.encoder)).toBeNull();
  expect(await loadError(app, STANDIN_IDS.decoderQ4)).toBeNull();
  await startContributing(app);
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  const openai = new OpenAI({ baseURL: `${gateway()}/v1`, apiKey: 'local', maxRetries: 0 });

  // /v1/models: the stand-ins, under their own names, with what the API can ask of them.
  const listed = new Map((await openai.models.list()).data.map((m) => [m.id, m as unknown as { kinds: string[]; context_length: number }]));
  expect(listed.get(STANDIN_IDS.encoder)).toMatchObject({ kinds: ['embed'], context_length: 64 });
  expect(listed.get(STANDIN_IDS.decoderQ4)?.context_length).toBe(256);
  expect(listed.has('tiny-q4')).toBe(false);

  // Embeddings of the MiniLM-shaped encoder (token_type_ids, mean pooling, normalized) within 1e-4.
  const texts = ['the quick brown fox', 'models run in the browser on webgpu'];
  const embeddings = await openai.embeddings.create({ model: STANDIN_IDS.encoder, input: texts, encoding_format: 'float' });
  const reference = await referenceStandinEmbed(model(STANDIN_IDS.encoder), texts);
  embeddings.data.forEach((d, i) => d.embedding.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)));

  // Chat on the Qwen-shaped q4 decoder: the real Qwen3 template, rendered as @huggingface/jinja does in Node.
  const messages = [{ role: 'user' as const, content: 'Say something.' }];
  const q4 = model(STANDIN_IDS.decoderQ4);
  const config = JSON.parse(new TextDecoder().decode(q4.files.get('tokenizer_config.json'))) as {
    chat_template: string;
    eos_token: string;
  };
  const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
  const prompt = standinTokenizer(q4).encode(rendered, { add_special_tokens: false }).ids;
  const expected = await referenceStandinGreedy(q4, prompt, 8);
  expect(expected.minMargin).toBeGreaterThan(1e-2);
  const chat = await openai.chat.completions.create({ model: STANDIN_IDS.decoderQ4, messages, max_tokens: 8 });
  expect(chat.usage?.prompt_tokens).toBe(prompt.length);
  expect(chat.choices[0]?.message.content).toBe(standinTokenizer(q4).decode(expected.tokens, { skip_special_tokens: true }));

  // The page ran the q4 build on WebGPU and keeps the q4f16 build off it: no shader-f16 here.
  const plans = await app.evaluate(async () => {
    const s = window.spinneret;
    if (s === undefined) throw new Error('window.spinneret is missing');
    return (await s.bridge.api.models()).map((m) => ({ id: m.id, plan: m.plan, loadedOn: m.loadedOn }));
  });
  expect(plans.find((p) => p.id === STANDIN_IDS.decoderQ4)?.loadedOn).toBe('webgpu');
  const f16 = plans.find((p) => p.id === STANDIN_IDS.decoderQ4f16)?.plan;
  expect(f16?.backend).toBe('wasm');
  expect(f16?.fallbackReason).toMatch(/shader-f16/);

  // The q4f16 build (fp16 caches, fp16 logits) on WASM: the same greedy tokens as onnxruntime-node.
  const q4f16 = model(STANDIN_IDS.decoderQ4f16);
  const expected16 = await referenceStandinGreedy(q4f16, prompt, 8);
  const answer = await runJob(app, {
    kind: 'chat',
    model: STANDIN_IDS.decoderQ4f16,
    messages,
    maxTokens: 8,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  });
  if (!answer.ok) throw new Error(`q4f16 chat failed: ${answer.error.message}`);
  expect(answer.outcome.backend).toBe('wasm');
  expect(answer.outcome.result.kind === 'chat' && answer.outcome.result.tokens).toEqual(expected16.tokens);
});
