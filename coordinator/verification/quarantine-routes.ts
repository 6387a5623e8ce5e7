/**
 * The operator's quarantine routes (`Authorization: Bearer <SPINNERET_OPERATOR_TOKEN>`, as the
 * key routes): `GET /operator/quarantines` → {@link QuarantineList} (devices, and wallets as
 * `wallet:<address>`, in force; the latest lifts) and `POST /operator/quarantines/lift`
 * `{id, by, reason}` → `{lifted}`: the quarantine ends on every replica and the lift is recorded
 * (who, when, why). Credits the quarantine voided stay voided. 404 when none is in force.
 */
import { Hono } from 'hono';
import type { LiftView, QuarantineList } from '../../protocol/answers.ts';
import { LiftQuarantine } from '../../protocol/requests.ts';
import { bodyLimitOf, operatorAuth, Problem, readBody } from '../http.ts';
import type { Verification } from './service.ts';

export function quarantineRoutes(token: string, verification: Verification): Hono {
  const app = new Hono();
  const guard = operatorAuth(token);
  app.use('/operator/quarantines', guard);
  app.use('/operator/quarantines/*', guard);
  app.get('/operator/quarantines', async (c) => c.json((await verification.quarantines()) satisfies QuarantineList));
  app.post('/operator/quarantines/lift', bodyLimitOf(4096), async (c) => {
    const { id, by, reason } = await readBody(c, LiftQuarantine);
    const lifted = await verification.liftQuarantine(id, by, reason);
    if (lifted === null)
      throw new Problem(404, 'NOT_FOUND', `No quarantine of ${id} is in force. List them with GET /v1/operator/quarantines.`);
    return c.json({ lifted: lifted satisfies LiftView });
  });
  return app;
}
