/** The keys of a local network (`local.keysFile`): made, funded and saved once, reused while the database has them. */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger as Pino } from 'pino';
import type { Coordinator } from '../../coordinator/app.ts';
import type { Money } from '../../coordinator/earnings/local.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import type { CoordinatorConfig } from '../config.ts';

/** Keys of a local network (`local.keysFile`): the gateway's and the demo requester's. */
export interface LocalKeys {
  gateway: { id: string; secret: string; depositMemo: string };
  demo: { id: string; secret: string; depositMemo: string };
}

/** Reuses the keys in `local.keysFile` when the database still has them; else creates, funds and saves new ones. */
export async function ensureLocalKeys(
  config: CoordinatorConfig,
  coordinator: Coordinator,
  store: SqlStore,
  money: Money,
  log: Pino,
): Promise<LocalKeys> {
  const path = config['local.keysFile'] ?? '';
  if (existsSync(path)) {
    try {
      const saved = JSON.parse(readFileSync(path, 'utf8')) as LocalKeys;
      const { rows } = await store.db.query('SELECT id FROM api_keys WHERE id = $1 OR id = $2', [saved.gateway.id, saved.demo.id]);
      if (rows.length === 2) return saved;
    } catch (err) {
      log.warn({ path, err: err instanceof Error ? err.message : String(err) }, 'local keys file not usable; making new keys');
    }
  }
  const keys: LocalKeys = {
    gateway: await coordinator.createApiKey('local gateway', { jobsPerMinute: 600, maxInFlight: 16 }),
    demo: await coordinator.createApiKey('demo requester', { jobsPerMinute: 600, maxInFlight: 8 }),
  };
  // Requesters prepay and checks are paid from the network's budget: the faucet funds both with
  // real transfers on the emulated chain, booked by the deposit watcher like any deposit.
  for (const memo of [keys.gateway.depositMemo, keys.demo.depositMemo, money.budgetMemo]) await money.fund(memo, config['local.fund']);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(keys, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  log.info(
    { path, gatewayKeyId: keys.gateway.id, demoKeyId: keys.demo.id, fundNano: config['local.fund'].toString() },
    'local keys created and funded',
  );
  return keys;
}
