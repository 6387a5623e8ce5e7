/**
 * The whole network: the official `openai` client → the local gateway (seals on the
 * requester's machine) → the coordinator (blind relay, PostgreSQL) → a contributor tab in
 * Chromium running the job on WebGPU → back, checked against float64 references.
 */
import { readFileSync } from 'node:fs';
import type { Page } from '@playwright/test';
import OpenAI from 'openai';
import pg from 'pg';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceChatPrompt, referenceEmbed, referenceGreedy } from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import { RequesterClient } from '../requester/client.ts';
import { appUrl, expect, startContributing, test } from './fixtures.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set: run through playwright.config.ts`);
  return value;
};

async function contribute(page: Page): Promise<void> {
  await startContributing(page);
  await expect(page.getByTestId('contribute')).toHaveAttribute('data-state', /connected|working/);
}

test('an OpenAI client gets embeddings and streamed chat computed by a contributor tab on WebGPU', async ({ app }) => {
  await contribute(app);
  const openai = new OpenAI({ baseURL: `${env('SPINNERET_GATEWAY_URL')}/v1`, apiKey: 'local' });

  const texts = ['the quick brown fox', 'models run in the browser'];
  const embeddings = await openai.embeddings.create({ model: 'tiny-embed', input: texts, encoding_format: 'float' });
  const reference = referenceEmbed(texts);
  expect(embeddings.data).toHaveLength(2);
  embeddings.data.forEach((d, i) => d.embedding.forEach((x, j) => expect(Math.abs(x - (reference[i]?.[j] ?? NaN))).toBeLessThan(1e-4)));

  const decoder = testModels().decoder.entry.onnx.decoder;
  if (decoder === undefined) throw new Error('no decoder');
  const content = 'hi';
  const promptIds = decoderTokenizer().encode(referenceChatPrompt([{ role: 'user', content }])).ids;
  const expected = referenceGreedy(promptIds, 16, decoder.eosTokenIds);
  expect(expected.minMargin).toBeGreaterThan(1e-2);
  const stream = await openai.chat.completions.create({
    model: 'tiny-decoder',
    messages: [{ role: 'user', content }],
    max_tokens: 16,
    stream: true,
  });
  const deltas: string[] = [];
  for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '');
  expect(deltas.filter((d) => d !== '').length).toBeGreaterThan(1);
  expect(deltas.join('')).toBe(decoderTokenizer().decode(expected.tokens, { skip_special_tokens: true }));
  await expect(app.getByTestId('contrib-counts')).toHaveAttribute('data-done', /^[1-9]/);
});

test('a contributor tab closed mid-job: the job is re-leased to another and the requester gets exactly one answer', async ({ browser }) => {
  const first = await (await browser.newContext()).newPage();
  await first.goto(appUrl());
  await expect(first.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await contribute(first);

  const client = new RequesterClient({ coordinatorUrl: env('SPINNERET_COORDINATOR_URL'), apiKey: env('SPINNERET_E2E_API_KEY') });
  const prompt = DECODER_TEST_PROMPTS[3];
  const decoder = testModels().decoder.entry.onnx.decoder;
  if (decoder === undefined) throw new Error('no decoder');
  const promptIds = decoderTokenizer().encode(prompt).ids;
  const expected = referenceGreedy(promptIds, 48, decoder.eosTokenIds);
  const deltas: string[] = [];
  const answer = client.run(
    { kind: 'generate', model: 'tiny-decoder', prompt: promptIds, maxTokens: 48, sampling: { temperature: 0, topP: 1, seed: 0 } },
    { onDelta: (d) => deltas.push(d.text) },
  );
  // Close the first tab while it works on the job; then a second contributor arrives.
  await expect(first.getByTestId('contrib-state')).toContainText('Working', { timeout: 60_000 });
  await first.context().close();
  const second = await (await browser.newContext()).newPage();
  await second.goto(appUrl());
  await expect(second.locator('#app[data-ready="true"]')).toBeAttached({ timeout: 120_000 });
  await contribute(second);

  const result = await answer;
  expect(result.attempts).toBe(2);
  expect(result.kind === 'generate' && result.tokens).toEqual(expected.tokens);
  await expect(second.getByTestId('contrib-counts')).toHaveAttribute('data-done', '1');
  await second.context().close();
});

test('the coordinator never sees plaintext: the payload bytes appear nowhere in its database or logs', async ({ app }) => {
  await contribute(app);
  const marker = 'zanzibar quokka marmalade';
  const client = new RequesterClient({ coordinatorUrl: env('SPINNERET_COORDINATOR_URL'), apiKey: env('SPINNERET_E2E_API_KEY') });
  const result = await client.run({ kind: 'embed', model: 'tiny-embed', inputs: [marker] });
  expect(result.kind).toBe('embed');

  const db = new pg.Client({ connectionString: env('SPINNERET_E2E_DATABASE_URL') });
  await db.connect();
  try {
    const schema = env('SPINNERET_E2E_SCHEMA');
    const tables = await db.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [
      schema,
    ]);
    expect(tables.rows.map((r) => r.table_name)).toContain('jobs');
    let dump = '';
    for (const { table_name } of tables.rows) {
      const rows = await db.query(`SELECT * FROM "${schema}"."${table_name}"`);
      dump += JSON.stringify(rows.rows);
    }
    expect(dump).toContain('tiny-embed');
    const forms = [
      marker,
      Buffer.from(marker).toString('base64'),
      Buffer.from(marker).toString('base64url'),
      Buffer.from(marker).toString('hex'),
    ];
    const logs = readFileSync(env('SPINNERET_E2E_LOG'), 'utf8');
    for (const form of forms) {
      expect(dump).not.toContain(form);
      expect(logs).not.toContain(form);
    }
  } finally {
    await db.end();
  }
});
