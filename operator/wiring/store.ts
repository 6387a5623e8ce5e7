/** The coordinator's store from the configuration: PostgreSQL at `database.url`, else PGlite in `database.dataDir`. */
import type { Logger as Pino } from 'pino';
import { openStore } from '../../coordinator/store/index.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import type { CoordinatorConfig } from '../config.ts';

/** Opens (and migrates) the configured database; `replicaId` tags this replica's job records. */
export async function openConfiguredStore(config: CoordinatorConfig, log: Pino, replicaId: string | undefined): Promise<SqlStore> {
  return openStore({
    log: (message: string, err: unknown) => log.error({ component: 'store', err }, message),
    ...(config['database.url'] === undefined
      ? { dataDir: config['database.dataDir'] }
      : { databaseUrl: config['database.url'], ...(config['database.schema'] !== undefined && { schema: config['database.schema'] }) }),
    ...(replicaId !== undefined && { replicaId }),
  });
}

/** How the start line names the database. */
export function databaseLabel(config: CoordinatorConfig, storeGiven: boolean): string {
  return config['database.url'] === undefined && !storeGiven ? `PGlite ${config['database.dataDir']}` : 'PostgreSQL';
}
