/** The "Run a model" card: try a model on this device, without the network. */
import { proxy } from 'comlink';
import type { JobRequest, JobResult, StreamChunk } from '../protocol/jobs.ts';
import type { ModelSummary } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { t } from './i18n/index.ts';

export interface RunCardOptions {
  models: ModelSummary[];
  onError: (err: unknown) => void;
  clearError: () => void;
  /** After each run: models and the device line may have changed. */
  afterRun: () => Promise<void>;
}

export function mountRunCard(box: HTMLElement, bridge: WorkerBridge, options: RunCardOptions): void {
  const { api } = bridge;
  const { models } = options;
  const select = h(
    'select',
    { testid: 'run-model', id: 'run-model' },
    ...models.map((m) => h('option', { value: m.id }, `${m.name} (${m.kinds.join(', ')})`)),
  );
  const input = h('textarea', { testid: 'run-input', id: 'run-input', rows: 3 }, t('run.sample'));
  const out = h('pre', { testid: 'run-output', 'aria-labelledby': 'run-output-h' });
  const meta = h('p', { testid: 'run-meta', class: 'note' });
  const runButton = h('button', { testid: 'run-button', type: 'button' }, tr('run.run'));
  runButton.addEventListener('click', () => {
    const model = models.find((m) => m.id === select.value);
    if (model === undefined) return;
    options.clearError();
    replace(out);
    replace(meta, tr('run.running'));
    runButton.disabled = true;
    let streamed = '';
    api
      .run(
        jobFor(model, input.value),
        proxy((chunk: StreamChunk) => ((streamed += chunk.text), replace(out, streamed))),
      )
      .then(async (o) => {
        replace(out, describeResult(o.result));
        replace(meta, tr('run.meta', { backend: o.backend, ms: o.ms.toFixed(1), generation: o.deviceGeneration }));
        await options.afterRun();
      })
      .catch((err: unknown) => (replace(meta), options.onError(err)))
      .finally(() => (runButton.disabled = false));
  });
  replace(
    box,
    h('p', {}, h('label', { for: 'run-model' }, tr('run.model')), ' ', select, ' ', runButton),
    h('p', {}, h('label', { for: 'run-input' }, tr('run.input'))),
    input,
    meta,
    h('h3', { id: 'run-output-h' }, tr('run.output')),
    out,
  );
}

function jobFor(model: ModelSummary, text: string): JobRequest {
  if (model.kinds.includes('embed')) return { kind: 'embed', model: model.id, inputs: [text] };
  if (model.kinds.includes('chat'))
    return {
      kind: 'chat',
      model: model.id,
      messages: [{ role: 'user', content: text }],
      maxTokens: 32,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    };
  if (model.kinds.includes('generate'))
    return { kind: 'generate', model: model.id, prompt: text, maxTokens: 32, sampling: { temperature: 0, topP: 1, seed: 0 } };
  // An infer model: a deterministic wave of each declared input's shape (free dimensions as 1).
  const inputs: Record<string, { type: 'float32' | 'int64' | 'int32'; dims: number[]; data: number[] }> = {};
  for (const spec of model.inputs ?? []) {
    const dims = spec.shape.map((d) => (typeof d === 'number' ? d : 1));
    const count = dims.reduce((a, b) => a * b, 1);
    inputs[spec.name] = {
      type: spec.type,
      dims,
      data: Array.from({ length: count }, (_, i) => (spec.type === 'float32' ? Math.sin(i) : i % 2)),
    };
  }
  return { kind: 'infer', model: model.id, inputs };
}

/** The raw result, for people who try models; numbers and token ids are not words to translate. */
function describeResult(result: JobResult): string {
  switch (result.kind) {
    case 'embed':
      return result.embeddings
        .map(
          (e) =>
            `[${e
              .slice(0, 6)
              .map((x) => x.toFixed(4))
              .join(', ')}, …] (${e.length})`,
        )
        .join('\n');
    case 'generate':
      return `${result.text ?? ''}\n\n${result.tokens.join(' ')}`;
    case 'chat':
      return result.text;
    case 'score':
      return `${result.inTopK} / ${result.positions}`;
    case 'infer':
      return Object.entries(result.outputs)
        .map(
          ([name, t]) =>
            `${name} [${t.dims.join('×')}]: ${t.data
              .slice(0, 8)
              .map((x) => x.toFixed(4))
              .join(', ')}…`,
        )
        .join('\n');
  }
}
