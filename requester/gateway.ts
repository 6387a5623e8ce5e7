/**
 * A local OpenAI-compatible gateway: existing OpenAI clients and tools send embeddings and
 * chat completions here, and each becomes a Spinneret job that is sealed on this machine and
 * run by a contributor. Only this process sees plaintext; listen on loopback unless you mean it.
 */
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { InvalidInputError, UnknownModelError } from '../protocol/errors.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import type { JobKind } from '../protocol/manifest.ts';
import type { ModelFacts } from '../protocol/wire.ts';
import { RequesterClient, type ModelListing, type RunOptions } from './client.ts';
import { streamChat, usageObject } from './gateway-stream.ts';
import {
  ChatBody,
  CompletionBody,
  DEFAULT_MAX_TOKENS,
  EmbeddingsBody,
  float32Base64,
  parseBody,
  toChatRequest,
  toEmbedRequest,
  openAIError,
  toGenerateRequest,
  toOpenAIError,
  type OpenAIError,
} from './openai.ts';

/** Largest request body the gateway reads, bytes (`SPINNERET_GATEWAY_MAX_BODY`). Default 4 MiB. */
export const DEFAULT_GATEWAY_MAX_BODY = 4 * 1024 * 1024;

/** Extra facts about a model for OpenAI clients. */
export interface GatewayModelInfo {
  /** Unix time, seconds; default 0. */
  created?: number;
  /** Default `spinneret`. */
  ownedBy?: string;
  /** Completion length when a chat request gives none; default {@link DEFAULT_MAX_TOKENS}. */
  maxTokens?: number;
  /** Price per 1,000 tokens in nanoTON (decimal strings), as the catalog lists it. */
  pricing?: { currency: 'nanoTON'; inputPer1k: string; outputPer1k?: string };
}

/** The job kinds the OpenAI API reaches: embeddings, chat completions and completions. */
const API_KINDS: readonly JobKind[] = ['embed', 'chat', 'generate'];

/** A model as `/v1/models` lists it: only what the OpenAI API can use. */
interface ApiModel {
  id: string;
  kinds: JobKind[];
  contextLength: number | null;
}

export interface GatewayOptions {
  /** `modelFacts` (optional) narrows each listed model to the kinds its catalog entry really serves. */
  client: Pick<RequesterClient, 'run' | 'models'> & Partial<Pick<RequesterClient, 'modelFacts'>>;
  /** Keyed by model id. */
  modelsInfo?: Record<string, GatewayModelInfo>;
  /** How long a model list is reused to check requests, ms; default 5000. */
  modelsCacheMs?: number;
  /** Keys a client must send (`Authorization: Bearer <key>`); none: any client on the socket may call. */
  apiKeys?: readonly string[];
  /** Largest request body, bytes; larger ones get 413. Default {@link DEFAULT_GATEWAY_MAX_BODY}. */
  maxBodyBytes?: number;
  /** Where unexpected failures are reported (a pino logger); default console.error. */
  log?: { error(fields: object, message: string): void };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Browsers reach loopback too: a page on another site may POST here (a `text/plain` or form
 * body needs no preflight) and spend this gateway's coordinator key. OpenAI clients send JSON
 * and no Origin; browsers say where a request comes from (`Origin`, `Sec-Fetch-Site`).
 */
function crossSite<C extends Context>(c: C): OpenAIError | null {
  const site = c.req.header('sec-fetch-site');
  const origin = c.req.header('origin');
  const own = new URL(c.req.url).origin;
  if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && origin !== own)) {
    return openAIError(
      403,
      `Cross-site requests are refused (Origin ${origin ?? 'none'}, Sec-Fetch-Site ${site ?? 'none'}).`,
      'invalid_request_error',
      'cross_site',
    );
  }
  const type = c.req.header('content-type') ?? '';
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !/^application\/json\s*(?:;|$)/i.test(type)) {
    return openAIError(
      415,
      `Send the body as application/json (got ${type.slice(0, 100) || 'no content type'}).`,
      'invalid_request_error',
      'unsupported_media_type',
    );
  }
  return null;
}

export function createGateway(options: GatewayOptions): Hono {
  const { client, modelsInfo = {} } = options;
  const cacheMs = options.modelsCacheMs ?? 5000;
  let cached: { at: number; models: Promise<ApiModel[]> } | null = null;

  const apiModel = async (listing: ModelListing): Promise<ApiModel | null> => {
    let facts: ModelFacts | null = null;
    if (client.modelFacts !== undefined) facts = await client.modelFacts(listing.id);
    // Contributors consent to kinds, not per model: the catalog entry says what the model does.
    const served = facts?.model?.kinds;
    const kinds = listing.kinds.filter((k) => API_KINDS.includes(k) && (served === undefined || served.includes(k)));
    if (kinds.length === 0) return null;
    const model = facts?.model;
    const embedTokens = model?.engine === 'onnx' ? model.onnx.embedding?.maxTokens : undefined;
    const contextLength = facts?.limits.chat?.maxTokens ?? facts?.limits.generate?.maxTokens ?? embedTokens ?? null;
    return { id: listing.id, kinds, contextLength };
  };

  const listModels = (): Promise<ApiModel[]> => {
    if (cached === null || Date.now() - cached.at > cacheMs) {
      const models = client.models().then(async (list) => (await Promise.all(list.map(apiModel))).filter((m): m is ApiModel => m !== null));
      cached = { at: Date.now(), models };
      // A failed listing is not reused.
      models.catch(() => {
        if (cached?.models === models) cached = null;
      });
    }
    return cached.models;
  };
  // A job for a model nobody serves would wait in the queue; refuse it up front instead.
  const checkModel = async (model: string, kind: JobKind, endpoint: string): Promise<void> => {
    const models = await listModels();
    const found = models.find((m) => m.id === model);
    if (found === undefined) {
      throw new UnknownModelError(
        model,
        models.map((m) => m.id),
      );
    }
    if (!found.kinds.includes(kind)) {
      const endpoints = found.kinds.map(
        (k) => ({ embed: 'embeddings', chat: 'chat completions', generate: 'completions' })[k as string] ?? k,
      );
      throw new InvalidInputError(`Model "${model}" does not serve ${endpoint}; use ${endpoints.join(' or ')} instead.`);
    }
  };
  const fail = (c: Context, err: unknown): Response => {
    const { status, body } = toOpenAIError(err);
    if (status === 500) {
      if (options.log !== undefined) options.log.error({ err, path: c.req.path }, 'request failed');
      else console.error('gateway:', err);
    }
    return c.json(body, status);
  };
  const readJson = async (c: Context): Promise<unknown> => {
    try {
      return await c.req.json();
    } catch {
      throw new InvalidInputError('Invalid request: the body is not JSON.');
    }
  };
  const run = (request: JobRequest, c: Context, onDelta?: RunOptions['onDelta']): Promise<JobResult> =>
    client.run(request, onDelta === undefined ? { signal: c.req.raw.signal } : { signal: c.req.raw.signal, onDelta });

  const app = new Hono();
  // Health answers anyone (no key, no body), before the checks below.
  app.get('/healthz', (c) => c.json({ ok: true }));
  const maxBody = options.maxBodyBytes ?? DEFAULT_GATEWAY_MAX_BODY;
  const keys = options.apiKeys ?? [];

  app.use('*', async (c, next) => {
    const refused = crossSite(c);
    if (refused !== null) return c.json(refused.body, refused.status);
    if (keys.length > 0) {
      const given = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
      if (!keys.some((k) => sameSecret(given, k))) {
        const { status, body } = openAIError(
          401,
          "Send this gateway's key as `Authorization: Bearer <key>` (SPINNERET_GATEWAY_KEY where it runs).",
          'authentication_error',
          'invalid_api_key',
        );
        return c.json(body, status);
      }
    }
    await next();
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: maxBody,
      onError: (c) => {
        const { status, body } = openAIError(
          413,
          `The body exceeds ${maxBody} bytes, this gateway's limit.`,
          'invalid_request_error',
          'body_too_large',
        );
        return c.json(body, status);
      },
    }),
  );

  app.get('/v1/models', async (c) => {
    try {
      const models = await listModels();
      return c.json({ object: 'list', data: models.map((m) => modelObject(m, modelsInfo[m.id])) });
    } catch (err) {
      return fail(c, err);
    }
  });

  app.get('/v1/models/:id{.+}', async (c) => {
    try {
      const models = await listModels();
      const found = models.find((m) => m.id === c.req.param('id'));
      if (found === undefined)
        throw new UnknownModelError(
          c.req.param('id'),
          models.map((m) => m.id),
        );
      return c.json(modelObject(found, modelsInfo[found.id]));
    } catch (err) {
      return fail(c, err);
    }
  });

  app.post('/v1/embeddings', async (c) => {
    try {
      const body = parseBody(EmbeddingsBody, await readJson(c));
      const request = toEmbedRequest(body);
      await checkModel(request.model, 'embed', 'embeddings');
      const result = await run(request, c);
      if (result.kind !== 'embed')
        throw new InvalidInputError(`Model "${request.model}" answered with a ${result.kind} result, not embeddings.`);
      const base64 = body.encoding_format === 'base64';
      return c.json({
        object: 'list',
        data: result.embeddings.map((embedding, index) => ({
          object: 'embedding',
          index,
          embedding: base64 ? float32Base64(embedding) : embedding,
        })),
        model: request.model,
        usage: { prompt_tokens: result.usage.promptTokens, total_tokens: result.usage.promptTokens },
      });
    } catch (err) {
      return fail(c, err);
    }
  });

  app.post('/v1/chat/completions', async (c) => {
    try {
      const body = parseBody(ChatBody, await readJson(c));
      const request = toChatRequest(body, modelsInfo[body.model]?.maxTokens ?? DEFAULT_MAX_TOKENS);
      await checkModel(request.model, 'chat', 'chat completions');
      const meta = {
        id: `chatcmpl-${crypto.randomUUID().replace(/-/g, '')}`,
        created: Math.floor(Date.now() / 1000),
        model: request.model,
      };
      if (body.stream !== true) {
        const result = await run(request, c);
        if (result.kind !== 'chat')
          throw new InvalidInputError(`Model "${request.model}" answered with a ${result.kind} result, not a chat message.`);
        return c.json({
          ...meta,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: result.text, refusal: null },
              finish_reason: result.finishReason,
              logprobs: null,
            },
          ],
          usage: usageObject(result),
        });
      }
      return await streamChat(request, meta, body.stream_options?.include_usage === true, run, c, fail);
    } catch (err) {
      return fail(c, err);
    }
  });

  app.onError((err, c) => fail(c, err));
  app.post('/v1/completions', async (c) => {
    try {
      const body = parseBody(CompletionBody, await readJson(c));
      const request = toGenerateRequest(body, modelsInfo[body.model]?.maxTokens ?? DEFAULT_MAX_TOKENS);
      await checkModel(request.model, 'generate', 'completions');
      const meta = { id: `cmpl-${crypto.randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model: request.model };
      if (body.stream !== true) {
        const result = await run(request, c);
        if (result.kind !== 'generate')
          throw new InvalidInputError(`Model "${request.model}" answered with a ${result.kind} result, not a completion.`);
        return c.json({
          ...meta,
          object: 'text_completion',
          choices: [{ index: 0, text: result.text ?? '', finish_reason: result.finishReason, logprobs: null }],
          usage: usageObject(result),
        });
      }
      return await streamChat(request, meta, body.stream_options?.include_usage === true, run, c, fail, 'text');
    } catch (err) {
      return fail(c, err);
    }
  });

  app.notFound((c) =>
    c.json(
      { error: { message: `No route ${c.req.method} ${c.req.path}.`, type: 'invalid_request_error', param: null, code: 'not_found' } },
      404,
    ),
  );
  return app;
}

function modelObject(model: ApiModel, info: GatewayModelInfo | undefined): Record<string, unknown> {
  return {
    id: model.id,
    object: 'model',
    created: info?.created ?? 0,
    owned_by: info?.ownedBy ?? 'spinneret',
    kinds: model.kinds,
    context_length: model.contextLength,
    ...(info?.pricing !== undefined ? { pricing: info.pricing } : {}),
  };
}

export interface StartGatewayOptions {
  /** 0 picks a free port. */
  port: number;
  /** Default `127.0.0.1`: the gateway holds plaintext and uses your API key, so keep it local. */
  host?: string;
  coordinatorUrl: string;
  apiKey: string;
  /**
   * Run jobs over the coordinator's requester channel (default true): one WebSocket for every
   * request, falling back to HTTP where the coordinator has no channel or it cannot open. The
   * SDK's fault run (requester/faults.test.ts) holds on both transports.
   */
  channel?: boolean;
  modelsInfo?: Record<string, GatewayModelInfo>;
  /** This gateway's own key for its clients (`SPINNERET_GATEWAY_KEY`); required unless it listens on loopback. */
  gatewayKey?: string;
  /** Default {@link DEFAULT_GATEWAY_MAX_BODY}. */
  maxBodyBytes?: number;
  log?: GatewayOptions['log'];
}

/** Whether `host` accepts only connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

/** Starts the gateway on a socket; `url` has no trailing slash (OpenAI clients use `${url}/v1`). */
export async function startGateway(options: StartGatewayOptions): Promise<{ url: string; close(): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && (options.gatewayKey === undefined || options.gatewayKey.length < 16)) {
    throw new InvalidInputError(
      `The gateway spends your coordinator key: listening on ${host} needs its own client key of 16 characters or more (set SPINNERET_GATEWAY_KEY), or listen on 127.0.0.1.`,
    );
  }
  const client = new RequesterClient({
    coordinatorUrl: options.coordinatorUrl,
    apiKey: options.apiKey,
    channel: options.channel ?? true,
  });
  const app = createGateway({
    client,
    ...(options.modelsInfo !== undefined && { modelsInfo: options.modelsInfo }),
    ...(options.gatewayKey !== undefined && { apiKeys: [options.gatewayKey] }),
    ...(options.maxBodyBytes !== undefined && { maxBodyBytes: options.maxBodyBytes }),
    ...(options.log !== undefined && { log: options.log }),
  });
  const served = await listen(app, options.port, host);
  return {
    url: served.url,
    async close() {
      await served.close();
      client.close();
    },
  };
}

/** Serves a Hono app with @hono/node-server; exported for tests that use a test-double client. */
export async function listen(app: Hono, port: number, host: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = serve({ fetch: app.fetch, port, hostname: host });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Open streams would hold close() until their jobs end.
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}
