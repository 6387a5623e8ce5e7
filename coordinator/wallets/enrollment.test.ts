import { createHash } from 'node:crypto';
import { Address } from '@ton/core';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../protocol/errors.ts';
import { createEnrollment, MemoryEnrollmentStore } from './enrollment.ts';
import {
  EnrollmentDeviceLimitError,
  EnrollmentTokenExpiredError,
  EnrollmentTokenRevokedError,
  EnrollmentTokenUnknownError,
} from './errors.ts';

const OWNER = Address.parseRaw(`0:${'ab'.repeat(32)}`);
const OTHER_OWNER = Address.parseRaw(`0:${'cd'.repeat(32)}`);
const HOUR = 3_600_000;

function setup() {
  let now = Date.UTC(2025, 0, 1);
  const clock = { now: () => now };
  const store = new MemoryEnrollmentStore();
  const enrollment = createEnrollment({ store, clock });
  const issue = (extra: { maxDevices?: number; owner?: Address } = {}) =>
    enrollment.issueToken({ owner: OWNER, label: 'Lab 3', scope: 'contribute', expiresAt: now + HOUR, ...extra });
  return { enrollment, store, issue, advance: (ms: number) => void (now += ms), now: () => now };
}

describe('enrollment tokens', () => {
  it('redeem to the owner wallet and bind the first device', async () => {
    const { enrollment, issue } = setup();
    const { id, secret } = await issue();
    const redemption = await enrollment.redeem(secret, 'device-a');
    expect(redemption.owner.equals(OWNER)).toBe(true);
    expect(redemption).toMatchObject({ tokenId: id, scope: 'contribute' });
    expect(await enrollment.redeem(secret, 'device-a')).toMatchObject({ tokenId: id });
    const [listed] = await enrollment.listByOwner(OWNER);
    expect(listed?.devices).toEqual(['device-a']);
  });

  it('store only the SHA-256 of the secret', async () => {
    const { store, issue } = setup();
    const { id, secret } = await issue();
    const hash = createHash('sha256').update(secret).digest('hex');
    expect((await store.findBySecretHash(hash))?.id).toBe(id);
    expect(await store.findBySecretHash(secret)).toBeNull();
    expect(JSON.stringify(await store.listByOwner(OWNER.toRawString()))).not.toContain(secret);
  });

  it('refuse a second device unless maxDevices allows it', async () => {
    const { enrollment, issue } = setup();
    const single = await issue();
    await enrollment.redeem(single.secret, 'device-a');
    await expect(enrollment.redeem(single.secret, 'device-b')).rejects.toThrow(EnrollmentDeviceLimitError);

    const lab = await issue({ maxDevices: 2 });
    await enrollment.redeem(lab.secret, 'device-a');
    await enrollment.redeem(lab.secret, 'device-b');
    await expect(enrollment.redeem(lab.secret, 'device-c')).rejects.toThrow(EnrollmentDeviceLimitError);
  });

  it('refuse an expired token, even for a device already bound', async () => {
    const { enrollment, issue, advance } = setup();
    const { secret } = await issue();
    await enrollment.redeem(secret, 'device-a');
    advance(HOUR - 1);
    await expect(enrollment.redeem(secret, 'device-a')).resolves.toBeDefined();
    advance(1);
    await expect(enrollment.redeem(secret, 'device-a')).rejects.toThrow(EnrollmentTokenExpiredError);
  });

  it('refuse a revoked token; only its owner may revoke it', async () => {
    const { enrollment, issue } = setup();
    const { id, secret } = await issue();
    await enrollment.redeem(secret, 'device-a');
    expect(await enrollment.revoke(id, OTHER_OWNER)).toBe(false);
    await expect(enrollment.redeem(secret, 'device-a')).resolves.toBeDefined();
    expect(await enrollment.revoke(id, OWNER)).toBe(true);
    expect(await enrollment.revoke(id, OWNER)).toBe(false);
    await expect(enrollment.redeem(secret, 'device-a')).rejects.toThrow(EnrollmentTokenRevokedError);
    const [listed] = await enrollment.listByOwner(OWNER);
    expect(listed?.revokedAt).not.toBeNull();
  });

  it('refuse an unknown secret', async () => {
    const { enrollment, issue } = setup();
    await issue();
    await expect(enrollment.redeem('not-a-token', 'device-a')).rejects.toThrow(EnrollmentTokenUnknownError);
  });

  it('list only the owner’s tokens', async () => {
    const { enrollment, issue } = setup();
    const mine = await issue();
    await issue({ owner: OTHER_OWNER });
    const listed = await enrollment.listByOwner(OWNER);
    expect(listed.map((t) => t.id)).toEqual([mine.id]);
    expect(listed[0]).toMatchObject({ label: 'Lab 3', scope: 'contribute', maxDevices: 1, revokedAt: null });
  });

  it('refuse to issue a token that is already expired or allows no device', async () => {
    const { enrollment, issue, now } = setup();
    await expect(enrollment.issueToken({ owner: OWNER, label: 'x', scope: 'contribute', expiresAt: now() })).rejects.toThrow(
      InvalidInputError,
    );
    await expect(issue({ maxDevices: 0 })).rejects.toThrow(InvalidInputError);
  });
});
