/** The enrollment library on its SQL store, on PGlite and on PostgreSQL. */
import { Address } from '@ton/core';
import { describe, expect, it } from 'vitest';
import type { SqlDb } from '../store/sql.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import { createEnrollment } from '../wallets/enrollment.ts';
import {
  EnrollmentDeviceLimitError,
  EnrollmentScopeError,
  EnrollmentTokenExpiredError,
  EnrollmentTokenRevokedError,
} from '../wallets/errors.ts';
import { SqlEnrollmentStore } from './enrollment-store.ts';

const OWNER = Address.parseRaw(`0:${'ab'.repeat(32)}`);
const OTHER = Address.parseRaw(`0:${'cd'.repeat(32)}`);
const HOUR = 3_600_000;

describe.each(BACKENDS)('enrollment tokens on $name', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened));

  it('issue, bind up to maxDevices, list, revoke and expire', async () => {
    let now = Date.UTC(2026, 0, 1);
    const clock = { now: () => now };
    const store = new SqlEnrollmentStore(db, clock.now);
    const enrollment = createEnrollment({ store, clock });
    const lab = await enrollment.issueToken({ owner: OWNER, label: 'Lab 3', scope: 'contribute', expiresAt: now + HOUR, maxDevices: 2 });
    now += 1;
    await enrollment.issueToken({ owner: OTHER, label: 'theirs', scope: 'contribute', expiresAt: now + HOUR });
    now += 1;
    const monitor = await enrollment.issueToken({ owner: OWNER, label: 'screen', scope: 'monitor', expiresAt: now + HOUR });

    expect(await enrollment.redeem(lab.secret, 'device-a')).toMatchObject({ tokenId: lab.id, label: 'Lab 3' });
    // Two devices at once may not both take the last place.
    const racing = await Promise.allSettled([enrollment.redeem(lab.secret, 'device-b'), enrollment.redeem(lab.secret, 'device-c')]);
    expect(racing.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(racing.find((r) => r.status === 'rejected')?.reason).toBeInstanceOf(EnrollmentDeviceLimitError);
    await expect(enrollment.redeem(lab.secret, 'device-a')).resolves.toBeDefined();
    await expect(enrollment.redeem(monitor.secret, 'device-a')).rejects.toThrow(EnrollmentScopeError);
    expect((await enrollment.check(monitor.secret, 'monitor')).owner).toBe(OWNER.toRawString());

    const mine = await enrollment.listByOwner(OWNER);
    expect(mine.map((t) => t.label)).toEqual(['Lab 3', 'screen']);
    expect(mine[0]?.devices).toHaveLength(2);
    expect(mine[0]?.devices[0]).toBe('device-a');

    expect(await enrollment.revoke(lab.id, OTHER)).toBe(false);
    expect(await enrollment.revoke(lab.id, OWNER)).toBe(true);
    await expect(enrollment.redeem(lab.secret, 'device-a')).rejects.toThrow(EnrollmentTokenRevokedError);
    now += HOUR;
    await expect(enrollment.check(monitor.secret, 'monitor')).rejects.toThrow(EnrollmentTokenExpiredError);
  });
});
