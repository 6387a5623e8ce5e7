/**
 * Kiosk and lab fleets, wired for the coordinator: enrollment tokens on the database, the
 * sessions enrolled devices carry in their hello, the owner's fleet listing and remote
 * controls, and their routes.
 */
import type { Hono } from 'hono';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import type { SessionResolver } from '../sessions/bindings.ts';
import type { SqlDb } from '../store/sql.ts';
import { createEnrollment } from '../wallets/enrollment.ts';
import type { WalletSessions } from '../wallets/wallet-sessions.ts';
import { EnrollmentSessions } from './enrollment-sessions.ts';
import { SqlEnrollmentStore } from './enrollment-store.ts';
import { Fleet } from './fleet.ts';
import { fleetRoutes } from './routes.ts';

export type { FleetDevice, FleetView } from './fleet.ts';

export interface FleetService {
  /** Mounted under `/v1`. */
  routes: Hono;
  /** Resolves enrollment sessions in `hello.session`. */
  resolver: SessionResolver;
  /** For the gateway: re-sends the owner's standing controls to a device that connects. */
  welcomed(contributor: ConnectedContributor): void;
}

export function createFleetService(options: {
  db: SqlDb;
  clock: Clock;
  logger: Logger;
  walletSessions: WalletSessions;
  /** The connected contributor with this id (the gateway's). */
  live: (contributorId: string) => ConnectedContributor | undefined;
}): FleetService {
  const { db, clock } = options;
  const enrollment = createEnrollment({ store: new SqlEnrollmentStore(db, () => clock.now()), clock });
  const enrollmentSessions = new EnrollmentSessions(db, { clock });
  const fleet = new Fleet({ db, clock, live: options.live });
  return {
    routes: fleetRoutes({ enrollment, enrollmentSessions, walletSessions: options.walletSessions, fleet, clock }),
    resolver: enrollmentSessions,
    welcomed(contributor) {
      fleet.welcomed(contributor).catch((err: unknown) => {
        options.logger.error('could not re-send fleet controls', { contributorId: contributor.id, error: errorText(err) });
      });
    },
  };
}
