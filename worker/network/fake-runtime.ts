/**
 * Test support (not used by the app): a runtime double for the contributor, and requests for it.
 */
import { AbortedError, ModelTooLargeError } from '../../protocol/errors.ts';
import type { JobRequest, JobResult, StreamChunk } from '../../protocol/jobs.ts';
import type { ContributorRuntime } from './contributor.ts';

/**
 * A runtime double. `chat` jobs stream three deltas and answer; a chat whose last message is
 * `hold` waits for {@link release} (or its abort) before answering. `embed` jobs fail with a
 * typed error. A chat whose last message is `big` answers 10 000 characters.
 */
export class FakeRuntime implements ContributorRuntime {
  running = 0;
  maxRunning = 0;
  readonly aborted: string[] = [];
  /** Whether `embed-model` has its files on disk (a cached model costs no download). */
  embedCached = true;
  /** Each `chat` job also waits this long, ms (for pace and duty-cycle tests). */
  chatDelayMs = 0;
  readonly #lossListeners = new Set<(s: { deviceLosses: number; lastDeviceLoss: { at: number; message: string } | null }) => void>();
  #losses = 0;
  #loading: string[] = [];
  readonly #loadingListeners = new Set<() => void>();
  #held: Array<() => void> = [];

  async run(
    request: unknown,
    options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {},
  ): Promise<{ result: JobResult }> {
    const job = request as JobRequest;
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (job.kind === 'embed') throw new ModelTooLargeError(job.model, 2 << 30, 1 << 30, 'GPU memory');
      if (job.kind !== 'chat') throw new Error(`The double does not run ${job.kind} jobs`);
      const texts = ['Hel', 'lo', '!'];
      for (const [index, text] of texts.entries()) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        options.onChunk?.({ index, text, tokens: [index + 1] });
      }
      if (this.chatDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.chatDelayMs));
      if (job.messages.at(-1)?.content === 'hold') await this.#hold(job.model, options.signal);
      options.signal?.throwIfAborted();
      const text = job.messages.at(-1)?.content === 'big' ? 'x'.repeat(10_000) : texts.join('');
      return { result: { kind: 'chat', text, finishReason: 'stop', usage: { promptTokens: 4, completionTokens: 3 } } };
    } finally {
      this.running--;
    }
  }

  /** Reports a GPU device loss, as the runtime does after a driver reset. */
  loseDevice(message = 'device destroyed'): void {
    this.#losses++;
    for (const listener of this.#lossListeners) listener({ deviceLosses: this.#losses, lastDeviceLoss: { at: Date.now(), message } });
  }

  onDeviceLost(listener: (s: { deviceLosses: number; lastDeviceLoss: { at: number; message: string } | null }) => void): () => void {
    this.#lossListeners.add(listener);
    return () => this.#lossListeners.delete(listener);
  }

  loadingModels(): string[] {
    return [...this.#loading];
  }

  onLoadingChange(listener: () => void): () => void {
    this.#loadingListeners.add(listener);
    return () => this.#loadingListeners.delete(listener);
  }

  /** Pretends these models are loading now. */
  setLoading(ids: string[]): void {
    this.#loading = [...ids];
    for (const listener of this.#loadingListeners) listener();
  }

  /** Lets every held job answer. */
  release(): void {
    for (const go of this.#held.splice(0)) go();
  }

  async models(): Promise<Awaited<ReturnType<ContributorRuntime['models']>>> {
    return [
      {
        id: 'chat-model',
        engine: 'webllm',
        cached: true,
        loadedOn: 'webllm:q4f32_1',
        plan: { backend: 'webllm:q4f32_1', memoryBytes: 600 * MIB },
        blocked: null,
        sizeBytes: 300 * MIB,
        vramBytes: 700 * MIB,
      },
      {
        id: 'embed-model',
        engine: 'onnx',
        cached: this.embedCached,
        loadedOn: null,
        plan: { backend: 'webgpu', memoryBytes: 40 * MIB },
        blocked: null,
        sizeBytes: 20 * MIB,
        vramBytes: 40 * MIB,
      },
      {
        id: 'big-model',
        engine: 'onnx',
        cached: false,
        loadedOn: null,
        plan: null,
        blocked: { name: 'ModelTooLargeError', code: 'MODEL_TOO_LARGE', message: 'too large' },
        sizeBytes: 9000 * MIB,
        vramBytes: 9000 * MIB,
      },
    ];
  }

  status(): ReturnType<ContributorRuntime['status']> {
    return {
      gpu: {
        vendor: 'acme',
        architecture: 'rdna9',
        device: '',
        description: '',
        isFallbackAdapter: false,
        features: ['shader-f16'],
        limits: LIMITS,
      },
    };
  }

  #hold(what: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.aborted.push(what);
        reject(signal?.reason instanceof Error ? signal.reason : new AbortedError(what));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#held.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
}

const MIB = 1024 * 1024;

const LIMITS = {
  maxBufferSize: 1 << 30,
  maxStorageBufferBindingSize: 1 << 30,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxStorageBuffersPerShaderStage: 10,
};

/** A chat request for the double; `content: 'hold'` makes it wait for `release()`. */
export function chat(content = 'hi', model = 'chat-model'): JobRequest {
  return { kind: 'chat', model, messages: [{ role: 'user', content }], maxTokens: 16, sampling: { temperature: 0, topP: 1, seed: 0 } };
}

/** An embed request (fails in the double). */
export function embed(model = 'embed-model'): JobRequest {
  return { kind: 'embed', model, inputs: ['x'] };
}
