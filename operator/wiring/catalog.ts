/** The model catalog from the model host's manifest. */
import type { Logger as Pino } from 'pino';
import { ModelCatalog } from '../../coordinator/models/catalog.ts';

/** Loads the catalog, waiting up to `waitMs` for a model host that is starting too. */
export async function loadCatalog(url: string, log: Pino, waitMs = 30_000): Promise<ModelCatalog> {
  const until = Date.now() + waitMs;
  for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await ModelCatalog.load(url);
    } catch (err) {
      if (Date.now() + delay > until) throw err;
      log.warn({ manifestUrl: url, err: err instanceof Error ? err.message : String(err) }, 'model manifest not readable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
