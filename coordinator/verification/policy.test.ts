import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../protocol/random.ts';
import type { ContributorView, JobView } from '../scheduler/scheduler.ts';
import { FakeClock } from '../testing.ts';
import type { Finding, Judgement } from './outcome.ts';
import { VerificationPolicy, type VerificationConfig } from './policy.ts';

const HOUR = 3_600_000;
const ctx = { model: 'm', engineClass: 'e' };

function policy(clock = new FakeClock(), extra: Partial<VerificationConfig> = {}): VerificationPolicy {
  return new VerificationPolicy({
    canaryRate: 0.02,
    baseReplicationRate: 0.2,
    minReplicationRate: 0.02,
    decayPerCleanJob: 0.5,
    failureBoost: 2,
    quarantineAfter: 2,
    windowMs: HOUR,
    random: seededRandom(7),
    clock,
    ...extra,
  });
}

const finding = (contributorId: string, standing: Finding['standing'], ledger: Finding['ledger'] = 'settle'): Finding => ({
  contributorId,
  standing,
  ledger,
  kind:
    standing === 'failed'
      ? 'canary-fail'
      : standing === 'clean'
        ? 'canary-pass'
        : standing === 'suspect'
          ? 'replica-disagree'
          : 'unchecked',
  reason: `test ${standing}`,
});
const judgement = (jobId: string, ...findings: Finding[]): Judgement => ({ jobId, check: 'canary', findings, needsTieBreak: false });

describe('VerificationPolicy', () => {
  it('decays the rate geometrically per clean check to the floor, per model and engine class', () => {
    const p = policy();
    for (let i = 0; i < 2; i++) p.apply(judgement(`j${i}`, finding('a', 'clean')), ctx);
    expect(p.replicationRate('a', 'm', 'e')).toBeCloseTo(0.05, 12); // 0.2 · 0.5²
    for (let i = 0; i < 5; i++) p.apply(judgement(`k${i}`, finding('a', 'clean')), ctx);
    expect(p.replicationRate('a', 'm', 'e')).toBe(0.02);
    expect(p.replicationRate('a', 'other-model', 'e')).toBe(0.2);
    expect(p.replicationRate('a', 'm', 'other-engine')).toBe(0.2);
  });

  it('jumps back to at least the base rate after a failure or suspicion, and rises with repeats', () => {
    const p = policy(new FakeClock(), { quarantineAfter: 10 });
    for (let i = 0; i < 6; i++) p.apply(judgement(`j${i}`, finding('a', 'clean')), ctx);
    p.apply(judgement('s', finding('a', 'suspect', 'hold')), ctx);
    expect(p.replicationRate('a', 'm', 'e')).toBe(0.2);
    p.apply(judgement('f1', finding('a', 'failed', 'void')), ctx);
    expect(p.replicationRate('a', 'm', 'e')).toBe(0.4);
    p.apply(judgement('f2', finding('a', 'failed', 'void')), ctx);
    p.apply(judgement('f3', finding('a', 'failed', 'void')), ctx);
    expect(p.replicationRate('a', 'm', 'e')).toBe(1);
  });

  it('scores reputation as the Beta(clean+1, failed+1) mean; suspicion does not count', () => {
    const p = policy(new FakeClock(), { quarantineAfter: 10 });
    expect(p.reputation('a').score).toBe(0.5);
    for (let i = 0; i < 3; i++) p.apply(judgement(`j${i}`, finding('a', 'clean')), ctx);
    p.apply(judgement('f', finding('a', 'failed', 'void')), ctx);
    p.apply(judgement('s', finding('a', 'suspect', 'hold')), ctx);
    expect(p.reputation('a')).toEqual({ score: 4 / 6, clean: 3, failed: 1, quarantined: false });
  });

  it('quarantines after enough failures within the window, voids unverified and held credits, keeps checked ones', () => {
    const clock = new FakeClock();
    const p = policy(clock);
    p.apply(judgement('checked', finding('a', 'clean')), ctx);
    p.apply(judgement('unchecked', finding('a', 'unchecked')), ctx);
    p.apply(judgement('paid', finding('a', 'unchecked')), ctx);
    p.settled('paid', 'a');
    p.apply(judgement('held', finding('a', 'suspect', 'hold')), ctx);
    p.apply(judgement('f1', finding('a', 'failed', 'void')), ctx);
    clock.advance(HOUR + 1); // the first failure leaves the window
    expect(p.apply(judgement('f2', finding('a', 'failed', 'void')), ctx).quarantined).toEqual([]);
    clock.advance(1000);
    const effects = p.apply(judgement('f3', finding('a', 'failed', 'void')), ctx);
    expect(effects.quarantined).toEqual(['a']);
    expect(effects.voids.map((v) => v.jobId).sort()).toEqual(['held', 'unchecked']);
    expect(p.isQuarantined('a')).toBe(true);
    const last = p.history('a').at(-1);
    expect(last?.kind).toBe('quarantined');
    expect(last?.reason).toMatch(/2 of your results failed checks within 1 hours/);
    expect(p.history('a').map((r) => r.kind)).toEqual([
      'canary-pass',
      'unchecked',
      'unchecked',
      'replica-disagree',
      'canary-fail',
      'canary-fail',
      'canary-fail',
      'quarantined',
    ]);
  });

  it('refuses a quarantined contributor through the scheduler hook until released', () => {
    const clock = new FakeClock();
    const p = policy(clock, { quarantineMs: 10 * 60_000 });
    const hooks = p.schedulerHooks();
    const view = { id: 'a' } as ContributorView;
    const job = { id: 'j' } as JobView;
    expect(hooks.eligible?.(view, job)).toBe(true);
    p.apply(judgement('f1', finding('a', 'failed', 'void'), finding('b', 'clean')), ctx);
    p.apply(judgement('f2', finding('a', 'failed', 'void')), ctx);
    expect(hooks.eligible?.(view, job)).toBe(false);
    expect(hooks.eligible?.({ id: 'b' } as ContributorView, job)).toBe(true);
    clock.advance(10 * 60_000);
    expect(hooks.eligible?.(view, job)).toBe(true);
    expect(p.history('a').at(-1)?.kind).toBe('released');
  });

  it('draws decisions from the seeded stream, the same every time', () => {
    const draw = (): string =>
      Array.from({ length: 200 }, (_, i) => {
        const d = policy().decide({ id: `j${i}`, model: 'm', kind: 'embed' }, { id: 'a', engineClass: 'e' });
        return `${+d.canary}${+d.replicate}`;
      }).join('');
    expect(draw()).toBe(draw());
  });

  it('rejects a nonsensical configuration', () => {
    expect(() => policy(new FakeClock(), { canaryRate: 1.5 })).toThrow(RangeError);
    expect(() => policy(new FakeClock(), { minReplicationRate: 0.5 })).toThrow(/exceed/);
    expect(() => policy(new FakeClock(), { failureBoost: 0.5 })).toThrow(RangeError);
  });
});
