/** The runtime page: the GPU probe and benchmark, the models, and running one on demand. */
import { proxy } from 'comlink';
import { formatBytes, SpinneretError } from '../protocol/errors.ts';
import type { JobRequest, JobResult, StreamChunk } from '../protocol/jobs.ts';
import type { LoadProgress } from '../worker/engines/types.ts';
import type { ModelSummary, RuntimeStatus } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import type { PageConfig } from './config.ts';
import { mountContribute } from './contribute.ts';
import { h, replace } from './dom.ts';
import { mountEarnings } from './earnings.ts';
import { mountWallet, type WalletCard } from './wallet.ts';

export async function mountProbePage(root: HTMLElement, bridge: WorkerBridge, config: PageConfig): Promise<void> {
  const { api } = bridge;
  const { manifestUrl } = config;
  const contribBox = h('section', { testid: 'contribute', 'aria-labelledby': 'contrib-h' });
  const walletBox = h('section', { testid: 'wallet', 'aria-labelledby': 'wallet-h' });
  const earnBox = h('section', { testid: 'earnings', 'aria-labelledby': 'earn-h' });
  const gpuBox = h('section', { testid: 'gpu', 'aria-labelledby': 'gpu-h' });
  const modelsBox = h('section', { testid: 'models', 'aria-labelledby': 'models-h' });
  const runBox = h('section', { testid: 'run', 'aria-labelledby': 'run-h' });
  const errorBox = h('p', { testid: 'error', class: 'error', role: 'alert' });
  replace(
    root,
    h('h1', {}, 'Spinneret'),
    h(
      'p',
      { class: 'note' },
      'Spinneret runs AI models on your GPU with WebGPU, inside a Web Worker in this tab. Models download from the model host listed below and are checked (SHA-256) before use. ',
      'When you contribute, your machine runs other people\u2019s jobs and can see their contents: a browser is not a sealed enclave.',
    ),
    errorBox,
    contribBox,
    config.coordinatorUrl === null ? null : walletBox,
    config.coordinatorUrl === null ? null : earnBox,
    gpuBox,
    modelsBox,
    runBox,
  );

  const showError = (err: unknown): void => {
    const message = err instanceof Error ? err.message : String(err);
    const code = err instanceof SpinneretError ? err.code : 'INTERNAL';
    errorBox.dataset['code'] = code;
    errorBox.dataset['name'] = err instanceof Error ? err.name : 'Error';
    replace(errorBox, message);
  };
  const clearError = (): void => {
    delete errorBox.dataset['code'];
    replace(errorBox);
  };

  let status: RuntimeStatus;
  try {
    status = await api.init({ manifestUrl });
  } catch (err) {
    showError(err);
    return;
  }

  const renderGpu = (s: RuntimeStatus): void => {
    const benchOut = h('div', { testid: 'bench-result' });
    const benchButton = h('button', { testid: 'bench', type: 'button' }, 'Run GPU benchmark');
    benchButton.addEventListener('click', () => {
      benchButton.disabled = true;
      replace(benchOut, 'Running the matmul and copy kernels…');
      api
        .benchmark()
        .then((b) =>
          replace(
            benchOut,
            h(
              'dl',
              {},
              h('dt', {}, 'Matmul'),
              h(
                'dd',
                { testid: 'bench-gflops' },
                `${b.matmul.gflops.toFixed(2)} GFLOP/s (${b.matmul.m}³, max error ${b.matmul.maxAbsError.toExponential(1)} vs CPU)`,
              ),
              h('dt', {}, 'Copy'),
              h('dd', { testid: 'bench-gbps' }, `${b.copy.gbps.toFixed(2)} GB/s (${formatBytes(b.copy.bytes)}, exact match)`),
            ),
          ),
        )
        .catch((err: unknown) => (replace(benchOut), showError(err)))
        .finally(() => (benchButton.disabled = false));
    });
    const loseButton = h('button', { testid: 'lose-device', type: 'button' }, 'Simulate GPU loss');
    loseButton.addEventListener('click', () => void api.loseDevice().catch(showError));
    if (s.gpu === null) {
      replace(
        gpuBox,
        h('h2', { id: 'gpu-h' }, 'GPU'),
        h('p', { testid: 'gpu-missing', class: 'error' }, s.gpuError?.message ?? 'No WebGPU adapter.'),
        h('p', { class: 'note' }, 'Models that allow it run on the CPU (WASM) instead, much more slowly.'),
      );
      return;
    }
    const g = s.gpu;
    replace(
      gpuBox,
      h('h2', { id: 'gpu-h' }, 'GPU'),
      h(
        'dl',
        {},
        h('dt', {}, 'Adapter'),
        h('dd', { testid: 'gpu-adapter' }, [g.vendor, g.architecture, g.device, g.description].filter(Boolean).join(' · ') || 'unnamed'),
        h('dt', {}, 'Software adapter'),
        h('dd', { testid: 'gpu-fallback' }, g.isFallbackAdapter ? 'yes (slow, for testing)' : 'no'),
        h('dt', {}, 'Features'),
        h('dd', { testid: 'gpu-features' }, g.features.join(', ') || 'none'),
        h('dt', {}, 'shader-f16'),
        h('dd', { testid: 'gpu-f16' }, g.features.includes('shader-f16') ? 'yes' : 'no (q4f32 builds are used)'),
        h('dt', {}, 'Largest buffer'),
        h('dd', {}, formatBytes(g.limits.maxBufferSize)),
        h('dt', {}, 'Device'),
        h('dd', { testid: 'device-status' }, deviceLine(s)),
      ),
      h('p', {}, benchButton, loseButton),
      benchOut,
    );
  };
  renderGpu(status);

  // Only the device line changes after start; rebuilding the card would drop the benchmark result.
  const refreshStatus = async (): Promise<void> => {
    const s = await api.status();
    const line = gpuBox.querySelector('[data-testid="device-status"]');
    if (line !== null) line.textContent = deviceLine(s);
  };

  const progress = new Map<string, HTMLProgressElement>();
  const renderModels = async (): Promise<ModelSummary[]> => {
    const models = await api.models();
    const rows = models.map((m) => {
      const bar = h('progress', { testid: `progress-${m.id}`, max: 1, value: m.cached ? 1 : 0 });
      progress.set(m.id, bar);
      const load = h('button', { testid: `load-${m.id}`, type: 'button', disabled: m.blocked !== null }, 'Load');
      load.addEventListener('click', () => {
        clearError();
        void api
          .load(
            m.id,
            proxy((p: LoadProgress) => p.totalBytes > 0 && ((bar.max = p.totalBytes), (bar.value = p.loadedBytes))),
          )
          .then(renderModels, showError);
      });
      const evict = h('button', { testid: `evict-${m.id}`, type: 'button' }, 'Evict');
      evict.addEventListener('click', () => void api.evict(m.id).then(renderModels, showError));
      return h(
        'tr',
        { testid: `model-${m.id}` },
        h('td', {}, h('strong', {}, m.name), h('br'), h('code', {}, m.id)),
        h('td', {}, m.engine, ' · ', m.kinds.join(', ')),
        h('td', {}, formatBytes(m.sizeBytes)),
        h(
          'td',
          { testid: `state-${m.id}` },
          m.blocked !== null
            ? h('span', { class: 'error' }, m.blocked.message)
            : m.loadedOn !== null
              ? `loaded on ${m.loadedOn}`
              : m.cached
                ? 'cached'
                : 'not downloaded',
        ),
        h('td', {}, bar, ' ', load, evict),
      );
    });
    replace(
      modelsBox,
      h('h2', { id: 'models-h' }, 'Models'),
      h('p', { class: 'note' }, 'From ', h('code', {}, manifestUrl)),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h('tr', {}, h('th', {}, 'Model'), h('th', {}, 'Engine · jobs'), h('th', {}, 'Size'), h('th', {}, 'State'), h('th', {}, '')),
        ),
        h('tbody', {}, ...rows),
      ),
    );
    return models;
  };
  const models = await renderModels().catch((err: unknown) => (showError(err), [] as ModelSummary[]));
  let wallet: WalletCard | null = null;
  if (config.coordinatorUrl !== null) {
    const { coordinatorUrl, walletsListUrl } = config;
    mountWallet(walletBox, { coordinatorUrl, walletsListUrl, deviceKey: () => api.deviceKey(), onError: showError }).then(
      (card) => (wallet = card),
      showError,
    );
    mountEarnings(earnBox, coordinatorUrl, () => wallet?.wallet());
  }
  mountContribute(
    contribBox,
    bridge,
    config.coordinatorUrl,
    showError,
    () => void renderModels().catch(() => undefined),
    () => wallet?.session(),
  );

  const select = h(
    'select',
    { testid: 'run-model', 'aria-label': 'Model' },
    ...models.map((m) => h('option', { value: m.id }, `${m.name} (${m.kinds.join(', ')})`)),
  );
  const input = h('textarea', { testid: 'run-input', rows: 3, 'aria-label': 'Input' }, 'The quick brown fox jumps over the lazy dog.');
  const out = h('pre', { testid: 'run-output', 'aria-live': 'polite' });
  const meta = h('p', { testid: 'run-meta', class: 'note' });
  const runButton = h('button', { testid: 'run-button', type: 'button' }, 'Run');
  runButton.addEventListener('click', () => {
    const model = models.find((m) => m.id === select.value);
    if (model === undefined) return;
    clearError();
    replace(out);
    replace(meta, 'Running…');
    runButton.disabled = true;
    let streamed = '';
    api
      .run(
        jobFor(model, input.value),
        proxy((chunk: StreamChunk) => ((streamed += chunk.text), replace(out, streamed))),
      )
      .then(async (o) => {
        replace(out, describeResult(o.result));
        replace(meta, `${o.backend} · ${o.ms.toFixed(1)} ms · device generation ${o.deviceGeneration}`);
        await renderModels();
        await refreshStatus();
      })
      .catch((err: unknown) => (replace(meta), showError(err)))
      .finally(() => (runButton.disabled = false));
  });
  replace(runBox, h('h2', { id: 'run-h' }, 'Run a model'), h('p', {}, select, ' ', runButton), input, meta, out);
  setInterval(() => void refreshStatus().catch(() => undefined), 2000);
}

function deviceLine(s: RuntimeStatus): string {
  const loss = s.lastDeviceLoss === null ? '' : ` (last: ${s.lastDeviceLoss.message})`;
  return `generation ${s.deviceGeneration}, ${s.deviceLosses} loss(es) recovered${loss}`;
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

function describeResult(result: JobResult): string {
  switch (result.kind) {
    case 'embed':
      return result.embeddings
        .map(
          (e) =>
            `[${e
              .slice(0, 6)
              .map((x) => x.toFixed(4))
              .join(', ')}, …] (${e.length} dims)`,
        )
        .join('\n');
    case 'generate':
      return `${result.text ?? ''}\n\ntokens: ${result.tokens.join(' ')}`;
    case 'chat':
      return result.text;
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
