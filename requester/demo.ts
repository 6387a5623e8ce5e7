/**
 * The demo requester of the local network: a steady trickle of embedding and chat jobs from
 * a sample corpus shipped in the repository, sealed on this machine like any requester's.
 */
import corpus from './corpus.json' with { type: 'json' };
import type { JobRequest } from '../protocol/jobs.ts';
import type { RequesterClient } from './client.ts';

export interface DemoOptions {
  client: Pick<RequesterClient, 'run'>;
  /** Milliseconds between jobs. */
  intervalMs: number;
  embedModel: string;
  chatModel: string;
  log?: (line: string) => void;
}

/** The n-th job of the trickle: embeddings and chat in turn, walking the corpus. */
export function demoJob(n: number, options: Pick<DemoOptions, 'embedModel' | 'chatModel'>): JobRequest {
  if (n % 2 === 0) {
    const text = corpus.embed[(n / 2) % corpus.embed.length] ?? 'hello';
    return { kind: 'embed', model: options.embedModel, inputs: [text] };
  }
  const content = corpus.chat[((n - 1) / 2) % corpus.chat.length] ?? 'hi';
  return {
    kind: 'chat',
    model: options.chatModel,
    messages: [{ role: 'user', content }],
    maxTokens: 24,
    sampling: { temperature: 0, topP: 1, seed: 0 },
  };
}

/** Starts the trickle; one job at a time, so an idle network queues at most one. Returns a stop function. */
export function startDemoRequester(options: DemoOptions): () => void {
  let stopped = false;
  let n = 0;
  const log = options.log ?? (() => undefined);
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const job = demoJob(n++, options);
      const started = Date.now();
      try {
        const result = await options.client.run(job);
        const summary =
          result.kind === 'embed'
            ? `${result.embeddings[0]?.length ?? 0}-dim vector`
            : result.kind === 'chat'
              ? JSON.stringify(result.text.slice(0, 40))
              : result.kind;
        log(`demo requester: ${job.kind} on ${job.model} done in ${Date.now() - started} ms (${summary})`);
      } catch (err) {
        log(`demo requester: ${job.kind} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
  };
  void loop();
  return () => {
    stopped = true;
  };
}
