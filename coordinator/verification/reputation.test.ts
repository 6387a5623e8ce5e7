/**
 * A device's record outlives the coordinator: faults and the models a first failure benched
 * it off come back after a restart (PGlite and PostgreSQL), and a new device's unchecked
 * credits settle only up to the probation credit cap, counted from the store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../protocol/random.ts';
import type { JobDone } from '../leases/relay.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { KnownAnswerCanaries } from './canaries.ts';
import { VerificationPolicy } from './policy.ts';
import { createVerification, DEFAULT_PROBATION_CREDIT_CAP, type Verification } from './service.ts';
import { disposeStore, openTestStore } from '../../testing/verification.ts';

const clock = { now: () => 1_000_000 };
const POLICY = {
  canaryRate: 0,
  baseReplicationRate: 0,
  minReplicationRate: 0,
  decayPerCleanJob: 1,
  failureBoost: 1,
  quarantineAfter: 3,
  windowMs: 3_600_000,
  benchFirstFailure: true,
  benchMs: 600_000,
  probationChecks: 20,
};

const stores: SqlStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await disposeStore(s);
});

async function start(store: SqlStore, cap?: bigint | null): Promise<{ verification: Verification; policy: VerificationPolicy }> {
  const policy = new VerificationPolicy({ ...POLICY, random: seededRandom(1), clock });
  const verification = createVerification({
    db: store.db,
    policy,
    canaries: new KnownAnswerCanaries([], seededRandom(2)),
    clock,
    verdictWindowMs: 60_000,
    ...(cap !== undefined && { probationCreditCap: cap }),
  });
  await verification.start();
  return { verification, policy };
}

const done = (jobId: string, contributorId: string): JobDone => ({
  jobId,
  apiKeyId: 'key-1',
  contributorId,
  role: 'job',
  engineClass: 'model:tiny-embed',
  model: 'tiny-embed',
  kind: 'embed',
  usage: { promptTokens: 1, completionTokens: 0 },
  claimed: { promptTokens: 1, completionTokens: 0 },
  envelope: { inputTokens: 1, maxOutputTokens: 0 },
});

describe.each(['PGlite', 'PostgreSQL'] as const)('a device record on %s', (backend) => {
  it('keeps faults and the bench of a first failure across a restart, and forgives that model only once', async () => {
    const store = await openTestStore(backend);
    stores.push(store);
    const first = await start(store);
    first.verification.relayChecks.onFault?.('dev-a', 'tiny-embed', 'invalid-input');
    first.verification.relayChecks.onFault?.('dev-a', 'tiny-embed', 'lease-expired');
    // A delivered result its requester could not open: a failed check, forgiven once by benching the device off the model.
    first.verification.relayChecks.onDone?.(done('job-1', 'dev-a'));
    await first.verification.idle();
    const reported = await first.verification.jobReport('job-1', 'key-1', { opened: false });
    expect(reported.ok).toBe(true);
    await first.verification.idle();
    expect(first.policy.isBenched('dev-a', 'tiny-embed')).toBe(true);
    const before = first.policy.reputation('dev-a');

    const second = await start(store);
    expect(second.policy.reputation('dev-a')).toEqual(before);
    // The forgiven failure is no failed check, the two faults count: (0 clean + 1) / (0 + 0 failed + 2 faults + 2).
    expect(before).toMatchObject({ clean: 0, failed: 0 });
    expect(before.score).toBeCloseTo(1 / 4, 12);
    expect(second.policy.isBenched('dev-a', 'tiny-embed')).toBe(true);
    expect(second.policy.benchedUntil('dev-a', 'tiny-embed')).toBe(clock.now() + 600_000);
    expect(second.policy.isBenched('dev-a', 'other-model')).toBe(false);
    // The model's one forgiveness is spent: the next failure there counts toward quarantine and benches nothing new.
    const effects = second.policy.apply(
      {
        jobId: 'job-2',
        check: 'canary',
        findings: [{ contributorId: 'dev-a', kind: 'canary-fail', standing: 'failed', ledger: 'void', reason: 'wrong' }],
        needsTieBreak: false,
      },
      { model: 'tiny-embed', engineClass: 'model:tiny-embed' },
    );
    expect(effects.benched).toEqual([]);
    expect(second.policy.reputation('dev-a').failed).toBe(1);
  }, 180_000);

  it('settles a new device’s unchecked credits up to the cap and holds the rest, after a restart too', async () => {
    const store = await openTestStore(backend);
    stores.push(store);
    const first = await start(store, 2_500n);
    for (const id of ['j1', 'j2', 'j3']) first.verification.relayChecks.onDone?.(done(id, 'dev-new'));
    // Another device's credit does not count against this one's cap.
    first.verification.relayChecks.onDone?.(done('k1', 'dev-other'));
    await first.verification.idle();
    for (const [i, jobId] of ['j1', 'j2', 'j3'].entries()) {
      await first.verification.receipt({
        jobId,
        contributorId: 'dev-new',
        wallet: 'w',
        model: 'tiny-embed',
        usage: { promptTokens: 1, completionTokens: 0 },
        amountNano: 1_000n,
        at: clock.now() + i,
      });
    }
    await first.verification.receipt({
      jobId: 'k1',
      contributorId: 'dev-other',
      wallet: 'w2',
      model: 'tiny-embed',
      usage: { promptTokens: 1, completionTokens: 0 },
      amountNano: 5_000n,
      at: clock.now(),
    });
    const verdicts = async (v: Verification) => Promise.all(['j1', 'j2', 'j3', 'k1'].map((id) => v.isVerified(id)));
    // 1 000 + 1 000 ≤ 2 500 < 1 000 + 1 000 + 1 000; the other device's 5 000 is over the cap on its own.
    expect(await verdicts(first.verification)).toEqual(['ok', 'ok', 'hold', 'hold']);

    const second = await start(store, 2_500n);
    expect(await verdicts(second.verification)).toEqual(['ok', 'ok', 'hold', 'hold']);
    // A voided credit no longer counts: the third fits under the cap.
    await store.db.query(`UPDATE verification_jobs SET status = 'void' WHERE job_id = 'j1'`);
    expect(await second.verification.isVerified('j3')).toBe('ok');
    await store.db.query(`UPDATE verification_jobs SET status = 'unchecked' WHERE job_id = 'j1'`);
    expect(await second.verification.isVerified('j3')).toBe('hold');
    // Past probation, nothing is capped.
    second.policy.restore('dev-new', { clean: 20, failed: 0, quarantinedUntil: null });
    expect(await second.verification.isVerified('j3')).toBe('ok');
    // No cap set: nothing is held for it.
    const uncapped = await start(store, null);
    expect(await uncapped.verification.isVerified('k1')).toBe('ok');
    expect(DEFAULT_PROBATION_CREDIT_CAP).toBe(1_000_000_000n);
  }, 180_000);
});
