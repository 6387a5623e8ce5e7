/**
 * The models this device can serve, one card each (no table, so a phone never scrolls sideways):
 * sizes, what the first job downloads (with the engine runtime, once), download progress, cache
 * use, load and evict.
 */
import { proxy } from 'comlink';
import { formatBytes } from './i18n/format.ts';
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
        'li',
        { testid: `model-${m.id}`, class: 'card' },
        h('p', {}, h('strong', {}, m.name), ' ', h('code', { class: 'note' }, m.id)),
        h(
          'dl',
          { class: 'pairs' },
          h('dt', {}, tr('models.engine')),
          h('dd', {}, m.engine, ' · ', m.kinds.join(', ')),
          h('dt', {}, tr('models.size')),
          h(
            'dd',
            {},
            formatBytes(m.sizeBytes),
            m.runtimeBytes > 0 && m.blocked === null
              ? h('span', { class: 'note' }, ' ', tr('models.plusRuntime', { size: formatBytes(m.runtimeBytes) }))
              : null,
          ),
          h('dt', {}, tr('models.state')),
          h(
            'dd',
            { testid: `state-${m.id}` },
            m.blocked !== null
              ? h('span', { class: 'error' }, m.blocked.message)
              : m.loadedOn !== null
                ? tr('models.loadedOn', { backend: m.loadedOn })
                : tr(m.cached ? 'models.cached' : 'models.notDownloaded'),
          ),
        ),
        h('p', { class: 'actions' }, bar, ' ', load, ' ', evict),
      );
    });
    replace(
      box,
      h('p', { class: 'note' }, tr('models.explain'), ' ', tr('models.from'), ' ', h('code', {}, manifestUrl)),
      cache,
      h('ul', { class: 'cards plain' }, ...rows),
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
