/**
 * The operator's API key routes (`Authorization: Bearer <SPINNERET_OPERATOR_TOKEN>`):
 * `GET /operator/keys` → `{keys: [{id, label, jobsPerMinute, maxInFlight, depositMemo,
 * createdAt, revokedAt}]}` (never a secret: only hashes are stored) and `DELETE
 * /operator/keys/:id` → `{id, revoked: true}`, refused at once from then on.
 */
import { Hono } from 'hono';
import { operatorAuth, Problem } from '../http.ts';
import type { Store } from '../store/types.ts';
import type { ApiKeys } from './keys.ts';

export function keyRoutes(token: string, store: Store, keys: ApiKeys): Hono {
  const app = new Hono();
  const guard = operatorAuth(token);
  app.use('/operator/keys', guard);
  app.use('/operator/keys/*', guard);
  app.get('/operator/keys', async (c) => c.json({ keys: await store.listApiKeys() }));
  app.delete('/operator/keys/:id', async (c) => {
    const id = c.req.param('id');
    const key = (await store.listApiKeys()).find((k) => k.id === id);
    if (key === undefined) throw new Problem(404, 'NOT_FOUND', `No API key ${id}. List them with GET /v1/operator/keys.`);
    await keys.revoke(id);
    return c.json({ id, revoked: true });
  });
  return app;
}
