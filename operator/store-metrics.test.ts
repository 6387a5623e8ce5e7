/**
 * `/metrics` of a coordinator from the operator's wiring counts the job records the database
 * refused and set aside (`spinneret_job_records_set_aside_total`) and those still waiting to be
 * written (`spinneret_job_records_buffered`; its growth while the database is down is in
 * operator/postgres-restart.test.ts). Every edge refuses a NUL byte before it reaches the
 * store, so the refused record is put on the store directly, as a bug past the edges would.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, describe, expect, it } from 'vitest';
import { startModelHost } from '../modelhost/server.ts';
import { openPgliteDb } from '../coordinator/store/pglite.ts';
import { SqlStore } from '../coordinator/store/sql-store.ts';
import type { JobRecord } from '../coordinator/store/types.ts';
import { loadCoordinatorConfig } from './config.ts';
import { createLog } from './log.ts';
import { startCoordinatorNode } from './wiring.ts';

const job = (id: string, model: string): JobRecord => ({
  id,
  apiKeyId: 'k',
  model,
  kind: 'chat',
  state: 'waiting',
  attempt: 1,
  contributorId: null,
  createdAt: 1,
  updatedAt: 1,
  payloadBytes: 0,
  resultBytes: 0,
  promptTokens: 0,
  completionTokens: 0,
  error: null,
});

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe('the job write buffer in /metrics', () => {
  it('counts the records set aside and those buffered', { timeout: 120_000 }, async () => {
    const host = await startModelHost({ port: 0 });
    cleanup.push(() => host.close());
    const config = loadCoordinatorConfig({
      env: {},
      fileText: JSON.stringify({ network: 'local', listen: { port: 0 }, manifestUrl: host.manifestUrl, drainTimeout: '1s' }),
    });
    const store = new SqlStore(await openPgliteDb());
    await store.migrate();
    cleanup.push(() => store.close());
    const node = await startCoordinatorNode({ config, log: createLog('coordinator', { level: 'silent' }), store });
    cleanup.push(() => node.close());
    const scrape = async (): Promise<Map<string, number>> => {
      const families = parsePrometheusTextFormat(await (await fetch(`${node.url}/metrics`)).text());
      return new Map(families.map((f) => [f.name, Number(f.metrics[0]?.value ?? NaN)]));
    };
    const before = await scrape();
    expect(before.get('spinneret_job_records_set_aside_total')).toBe(0);
    expect(before.get('spinneret_job_records_buffered')).toBe(0);

    store.putJob(job('fine-1', 'm'));
    store.putJob(job('refused', 'm\u0000'));
    store.putJob(job('fine-2', 'm'));
    await store.flush();
    const after = await scrape();
    expect(after.get('spinneret_job_records_set_aside_total')).toBe(1);
    expect(after.get('spinneret_job_records_buffered')).toBe(0);
    expect(await store.getJob('fine-2')).toMatchObject({ id: 'fine-2' });
  });
});
