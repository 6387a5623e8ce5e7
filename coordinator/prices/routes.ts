/**
 * `GET /v1/prices`: the network's price list, public, for the dashboard's earnings estimate.
 * Amounts are nanoTON as decimal strings (JSON has no bigint).
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import type { PriceListView } from '../../protocol/answers.ts';
import { defaultPrices, type PriceList } from '../ledger/prices.ts';

export type { PriceListView };

export function priceListView(list: PriceList): PriceListView {
  const models: PriceListView['models'] = {};
  for (const [id, p] of Object.entries(list.models)) {
    models[id] =
      p.kind === 'chat'
        ? { kind: 'chat', promptPer1k: p.promptPer1k.toString(), completionPer1k: p.completionPer1k.toString() }
        : { kind: 'embed', inputPer1k: p.inputPer1k.toString() };
  }
  return { commissionBps: list.commissionBps, models };
}

/** For `createCoordinator({ publicRoutes })`. */
export function priceRoutes(list: PriceList = defaultPrices()): Hono {
  const app = new Hono();
  // The dashboard runs on another origin; prices are public.
  app.use('/prices', cors({ origin: '*', allowMethods: ['GET'] }));
  app.get('/prices', (c) => c.json(priceListView(list), 200, { 'cache-control': 'public, max-age=60' }));
  return app;
}
