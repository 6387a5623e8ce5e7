/** The "Models" card: what this device can serve, sizes, download progress, cache use, and evict. */
import { proxy } from 'comlink';
import { formatBytes } from '../protocol/errors.ts';
import type { LoadProgress } from '../worker/engines/types.ts';
import type { ModelSummary } from '../worker/runtime.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr, trAttr } from './dom.ts';

export interface ModelsCard {
  /** Reads the models again and redraws the table; returns them. */
  render(): Promise<ModelSummary[]>;
}

export function mountModels(
  box: HTMLElement,
  bridge: WorkerBridge,
  manifestUrl: string,
  onError: (err: unknown) => void,
  clearError: () => void,
): ModelsCard {
  const { api } = bridge;
  const cache = h('p', { testid: 'cache-use', class: 'note' });
  const render = async (): Promise<ModelSummary[]> => {
    const models = await api.models();
    const rows = models.map((m) => {
      const bar = trAttr(h('progress', { testid: `progress-${m.id}`, max: 1, value: m.cached ? 1 : 0 }), 'aria-label', 'models.progress', {
        name: m.name,
      });
      const load = h('button', { testid: `load-${m.id}`, type: 'button', disabled: m.blocked !== null }, tr('models.load'));
      trAttr(load, 'aria-label', 'models.loadNamed', { name: m.name });
      load.addEventListener('click', () => {
        clearError();
        void api
          .load(
            m.id,
            proxy((p: LoadProgress) => p.totalBytes > 0 && ((bar.max = p.totalBytes), (bar.value = p.loadedBytes))),
          )
          .then(render, onError);
      });
      const evict = trAttr(
        h('button', { testid: `evict-${m.id}`, type: 'button' }, tr('models.evict')),
        'aria-label',
        'models.evictNamed',
        {
          name: m.name,
        },
      );
      evict.addEventListener('click', () => void api.evict(m.id).then(render, onError));
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
              ? tr('models.loadedOn', { backend: m.loadedOn })
              : tr(m.cached ? 'models.cached' : 'models.notDownloaded'),
        ),
        h('td', {}, bar, ' ', load, ' ', evict),
      );
    });
    replace(
      box,
      h('h2', { id: 'models-h' }, tr('models.title')),
      h('p', { class: 'note' }, tr('models.explain'), ' ', tr('models.from'), ' ', h('code', {}, manifestUrl)),
      cache,
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, tr('models.model')),
            h('th', { scope: 'col' }, tr('models.engine')),
            h('th', { scope: 'col' }, tr('models.size')),
            h('th', { scope: 'col' }, tr('models.state')),
            h('th', { scope: 'col' }, tr('models.actions')),
          ),
        ),
        h('tbody', {}, ...rows),
      ),
    );
    void showCacheUse(cache);
    return models;
  };
  return { render };
}

async function showCacheUse(target: HTMLElement): Promise<void> {
  const estimate = await navigator.storage?.estimate?.().catch(() => null);
  if (estimate?.usage === undefined || estimate.quota === undefined) return replace(target);
  target.dataset['usage'] = String(estimate.usage);
  replace(target, tr('models.cacheUse', { used: formatBytes(estimate.usage), quota: formatBytes(estimate.quota) }));
}
