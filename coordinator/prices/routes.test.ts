import { describe, expect, it } from 'vitest';
import { parsePriceList } from '../ledger/prices.ts';
import { priceRoutes, type PriceListView } from './routes.ts';

describe('GET /v1/prices', () => {
  it('answers the price list with nanoTON as decimal strings, open to other origins', async () => {
    const list = parsePriceList({
      commissionBps: 1000,
      models: {
        chat: { kind: 'chat', unit: 'tokens', promptPer1k: '2000', completionPer1k: '6000' },
        emb: { kind: 'embed', unit: 'tokens', inputPer1k: '123456789012345678901' },
      },
    });
    const res = await priceRoutes(list).request('/prices', { headers: { origin: 'http://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const body = (await res.json()) as PriceListView;
    expect(body).toEqual({
      commissionBps: 1000,
      models: {
        chat: { kind: 'chat', promptPer1k: '2000', completionPer1k: '6000' },
        emb: { kind: 'embed', inputPer1k: '123456789012345678901' },
      },
    });
  });

  it('serves the bundled list by default', async () => {
    const body = (await (await priceRoutes().request('/prices')).json()) as PriceListView;
    expect(body.models['tiny-embed']).toEqual({ kind: 'embed', inputPer1k: '1000000' });
  });
});
