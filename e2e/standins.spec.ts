/**
 * Stand-ins of published model layouts through the whole network: the official `openai`
 * client → gateway → coordinator → a contributor tab in Chromium (WebGPU on SwiftShader, WASM
 * where the device lacks what a build needs), checked against onnxruntime-node on the CPU.
 */
import { Template } from '@huggingface/jinja';
import OpenAI from 'openai';
import { STANDIN_IDS, standinModels, type BuiltModel } from '../modelhost/models/index.ts';
import { referenceStandinEmbed, referenceStandinGap, referenceStandinGreedy, standinTokenizer } from '../modelhost/standin-reference.ts';
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

test('stand-ins of published layouts serve the OpenAI client: embeddings, q4f16 chat routed to WASM, q4 on WebGPU', async ({ app }) => {
  // Three models, one with a 152k-token vocabulary on SwiftShader: longer than one job.
  test.setTimeout(420_000);
  // Loaded before contributing: on SwiftShader the first WebGPU steps compile shaders for longer than a lease waits.
  expect(await loadError(app, STANDIN_IDS.encoder)).toBeNull();
  expect(await loadError(app, STANDIN_IDS.decoderQ4f16)).toBeNull();
  await startContributing(app);
  await expect(app.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
  const openai = new OpenAI({ baseURL: `${gateway()}/v1`, apiKey: 'local', maxRetries: 0 });

  // /v1/models: the stand-ins, under their own names, with what the API can ask of them.
  const listed = new Map((await openai.models.list()).data.map((m) => [m.id, m as unknown as { kinds: string[]; context_length: number }]));
  expect(listed.get(STANDIN_IDS.encoder)).toMatchObject({ kinds: ['embed'], context_length: 64 });
  expect(listed.get(STANDIN_IDS.decoderQ4f16)?.context_length).toBe(256);
  expect(listed.has('tiny-q4')).toBe(false);

  // Embeddings of the MiniLM-shaped encoder (token_type_ids, mean pooling, normalized) within 1e-4.
  const texts = ['the quick brown fox', 'models run in the browser on webgpu'];
  const embeddings = await openai.embeddings.create({ model: STANDIN_IDS.encoder, input: texts, encoding_format: 'float' });
  const reference = await referenceStandinEmbed(model(STANDIN_IDS.encoder), texts);
  embeddings.data.forEach((d, i) => d.embedding.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)));

  // Chat through the network on the Qwen-shaped q4f16 decoder: the real Qwen3 template, rendered
  // as @huggingface/jinja does in Node; fp16 caches and logits; the tab routes it to WASM.
  const messages = [{ role: 'user' as const, content: 'Say something.' }];
  const q4f16 = model(STANDIN_IDS.decoderQ4f16);
  const config = JSON.parse(new TextDecoder().decode(q4f16.files.get('tokenizer_config.json'))) as {
    chat_template: string;
    eos_token: string;
  };
  const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
  const tokenizer = standinTokenizer(q4f16);
  const prompt = tokenizer.encode(rendered, { add_special_tokens: false }).ids;
  const chat = await openai.chat.completions.create({ model: STANDIN_IDS.decoderQ4f16, messages, max_tokens: 8 });
  expect(chat.usage?.prompt_tokens).toBe(prompt.length);
  // The same job in the same tab gives the tokens behind that text (it is deterministic).
  const local = await runJob(app, {
    kind: 'chat',
    model: STANDIN_IDS.decoderQ4f16,
    messages,
    maxTokens: 8,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  });
  if (!local.ok || local.outcome.result.kind !== 'chat')
    throw new Error(`q4f16 chat failed: ${local.ok ? 'not chat' : local.error.message}`);
  expect(local.outcome.backend).toBe('wasm');
  expect(chat.choices[0]?.message.content).toBe(local.outcome.result.text);
  // fp16 rounds differently in WASM and in onnxruntime-node: the first token must agree and no
  // step may pick a token whose reference logit is more than 0.1 below the reference's best.
  const tokens16 = local.outcome.result.tokens ?? [];
  expect(tokens16).toHaveLength(8);
  expect(tokens16[0]).toBe((await referenceStandinGreedy(q4f16, prompt, 1)).tokens[0]);
  expect(await referenceStandinGap(q4f16, prompt, tokens16)).toBeLessThan(0.1);

  // The q4f16 build is kept off WebGPU here (no shader-f16), with the reason.
  const plans = await app.evaluate(async () => {
    const s = window.spinneret;
    if (s === undefined) throw new Error('window.spinneret is missing');
    return (await s.bridge.api.models()).map((m) => ({ id: m.id, plan: m.plan, loadedOn: m.loadedOn }));
  });
  const f16 = plans.find((p) => p.id === STANDIN_IDS.decoderQ4f16);
  expect(f16?.loadedOn).toBe('wasm');
  expect(f16?.plan?.fallbackReason).toMatch(/shader-f16/);

  // The q4 build (fp32 caches) on WebGPU in the same tab: greedy tokens equal onnxruntime-node's.
  // Run in the page rather than through a lease: SwiftShader takes minutes over its first steps.
  const q4 = model(STANDIN_IDS.decoderQ4);
  const expected = await referenceStandinGreedy(q4, prompt, 4);
  const answer = await runJob(app, {
    kind: 'chat',
    model: STANDIN_IDS.decoderQ4,
    messages,
    maxTokens: 4,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  });
  if (!answer.ok) throw new Error(`q4 chat failed: ${answer.error.message}`);
  expect(answer.outcome.backend).toBe('webgpu');
  const tokens = answer.outcome.result.kind === 'chat' ? (answer.outcome.result.tokens ?? []) : [];
  // fp32 on SwiftShader against the CPU: equal tokens where the reference's margins are clear, near-greedy otherwise.
  if (expected.minMargin > 1e-2) expect(tokens).toEqual(expected.tokens);
  expect(await referenceStandinGap(q4, prompt, tokens)).toBeLessThan(1e-2);
});
