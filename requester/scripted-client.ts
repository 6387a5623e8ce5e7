/**
 * Test double of the requester SDK for the gateway's tests: answers from a script and records
 * what it was asked. Tests only.
 */
import OpenAI from 'openai';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import type { ModelListing, RunOptions } from './client.ts';
import { createGateway, listen } from './gateway.ts';

export interface Script {
  deltas?: string[];
  result?: JobResult;
  /** Thrown after the deltas (before any when there are none). */
  error?: Error;
  /** Never finishes: waits for the abort signal. */
  hang?: boolean;
}

/** Test double of RequesterClient: answers from `script`, records what it was asked. */
export class ScriptedClient {
  calls: Array<{ request: JobRequest; signal: AbortSignal | undefined }> = [];
  script: Script = {};
  aborted = false;

  /** Forgets the calls and the script. */
  reset(): void {
    this.calls = [];
    this.script = {};
    this.aborted = false;
  }

  async models(): Promise<ModelListing[]> {
    return [
      { id: 'tiny-chat', kinds: ['chat', 'generate'] },
      { id: 'tiny-embed', kinds: ['embed'] },
    ];
  }

  async run(request: JobRequest, options: RunOptions = {}): Promise<JobResult & { attempts: number }> {
    this.calls.push({ request, signal: options.signal });
    for (const text of this.script.deltas ?? []) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      options.onDelta?.({ text, tokens: [text.length] });
    }
    if (this.script.hang === true) {
      await new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve()));
      this.aborted = true;
    }
    if (this.script.error !== undefined) throw this.script.error;
    if (this.script.result === undefined) throw new Error('no result scripted');
    return { ...this.script.result, attempts: 1 };
  }
}

/** A gateway listening on a free loopback port, closed by `close()`. */
export interface ScriptedGateway {
  url: string;
  close(): Promise<void>;
}

/** A gateway over `client` on a free loopback port (`tiny-chat` capped at 64 tokens), and an OpenAI client of it that never retries. */
export async function startScripted(client: ScriptedClient): Promise<{ gateway: ScriptedGateway; openai: OpenAI }> {
  const gateway = await listen(
    createGateway({ client, modelsInfo: { 'tiny-chat': { maxTokens: 64, created: 1700000000 } } }),
    0,
    '127.0.0.1',
  );
  return { gateway, openai: new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }) };
}

/** A chat job's result: `text`, 7 prompt and 3 completion tokens. */
export const chatResult = (text: string, finishReason: 'stop' | 'length' = 'stop'): JobResult => ({
  kind: 'chat',
  text,
  finishReason,
  usage: { promptTokens: 7, completionTokens: 3 },
});
