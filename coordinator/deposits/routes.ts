/**
 * The operator's money routes under `/v1/operator` (docs/protocol.md, "Operator"): unmatched
 * deposits and their assignment, the check budget and its funding from the commission, and
 * the books check. `Authorization: Bearer <SPINNERET_OPERATOR_TOKEN>`; without a configured
 * token they are not served.
 */
import { timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import * as v from 'valibot';
import { bearer, Problem, readBody } from '../http.ts';
import type { Billing } from '../billing/service.ts';
import { LedgerError } from '../ledger/errors.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { DepositWatcher } from './watcher.ts';

const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'an id is 1–64 base64url characters'));
const Assign = v.strictObject({
  depositKey: v.pipe(v.string(), v.regex(/^deposit:\d{1,20}:[0-9a-f]{64}$/, 'a deposit key is deposit:<lt>:<hash>')),
  apiKeyId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]{1,64}$/, 'an API key id')),
});
const Fund = v.strictObject({
  fundingId: Id,
  /** nanoTON as a decimal string. */
  amount: v.pipe(v.string(), v.regex(/^[1-9]\d{0,18}$/, 'a positive whole number of nanoTON')),
});

export interface OperatorDeps {
  /** The operator's bearer token. */
  token: string;
  watcher: DepositWatcher;
  billing: Billing;
  ledger: Ledger;
  /** Whether an API key id exists (an assignment names one). */
  keyExists: (apiKeyId: string) => Promise<boolean>;
}

/** A ledger refusal (an entry that conflicts with the books) as the 409; anything else is rethrown. */
function conflict(err: unknown): never {
  if (err instanceof LedgerError) throw new Problem(409, 'CONFLICT', err.message);
  throw err;
}

export function operatorRoutes(deps: OperatorDeps): Hono {
  const app = new Hono();
  const expected = Buffer.from(deps.token, 'utf8');
  app.use('/operator/*', async (c, next) => {
    const given = Buffer.from(bearer(c.req.header('authorization')) ?? '', 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new Problem(401, 'UNAUTHORIZED', 'Send `Authorization: Bearer <SPINNERET_OPERATOR_TOKEN>`.');
    }
    await next();
  });
  app.get('/operator/deposits/unmatched', async (c) => {
    const limit = Number(c.req.query('limit') ?? 100);
    const rows = await deps.watcher.unmatched(Number.isInteger(limit) ? limit : 100);
    return c.json({ deposits: rows.map((d) => ({ ...d, amount: d.amount.toString() })) });
  });
  app.post('/operator/deposits/assign', async (c) => {
    const { depositKey, apiKeyId } = await readBody(c, Assign);
    if (!(await deps.keyExists(apiKeyId))) throw new Problem(404, 'NOT_FOUND', `No API key ${apiKeyId}.`);
    await deps.watcher.assign(depositKey, apiKeyId).catch(conflict);
    return c.json({ depositKey, apiKeyId });
  });
  app.get('/operator/budget', async (c) => {
    const b = await deps.billing.budget();
    return c.json({
      available: b.available.toString(),
      reserved: b.reserved.toString(),
      limit: deps.billing.budgetLimit.toString(),
      counts: deps.billing.counts,
    });
  });
  app.post('/operator/budget', async (c) => {
    const { fundingId, amount } = await readBody(c, Fund);
    const txn = await deps.billing.fundBudgetFromFees(fundingId, BigInt(amount)).catch(conflict);
    return c.json({ fundingId, replayed: txn.replayed });
  });
  app.get('/operator/books', async (c) => {
    const check = await deps.ledger.checkBooks();
    const totals = Object.fromEntries(Object.entries(check.totals).map(([k, n]) => [k, (n as bigint).toString()]));
    return c.json({ ok: check.ok, problems: check.problems, txns: check.txns, entries: check.entries, totals });
  });
  return app;
}
