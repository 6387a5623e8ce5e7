import { describe, expect, it } from 'vitest';
import { FakeClock } from '../testing.ts';
import { RequesterStanding } from './requesters.ts';

function standing(clock = new FakeClock()) {
  return { clock, standing: new RequesterStanding({ windowMs: 3_600_000, minReports: 10, clock }) };
}

/** `count` reports of `key`, `negative` of them blaming the contributor. */
function reports(s: RequesterStanding, key: string, count: number, negative: number): void {
  for (let i = 0; i < count; i++) s.note(key, i < negative);
}

describe("requesters' standing", () => {
  it('flags a requester far more negative than the median, and no one with too few reports or near the median', () => {
    const { standing: s } = standing();
    reports(s, 'honest-1', 40, 1);
    reports(s, 'honest-2', 40, 2);
    reports(s, 'honest-3', 40, 0);
    reports(s, 'unlucky', 40, 4);
    reports(s, 'liar', 40, 30);
    reports(s, 'new-liar', 9, 9);
    expect(s.median()).toBeCloseTo(2 / 40);
    expect(s.isFlagged('liar')).toBe(true);
    expect(s.isFlagged('unlucky')).toBe(false);
    expect(s.isFlagged('honest-1')).toBe(false);
    // Nine reports are too few to judge (minReports 10).
    expect(s.isFlagged('new-liar')).toBe(false);
  });

  it('forgets reports older than the window', () => {
    const { standing: s, clock } = standing();
    for (const key of ['a', 'b', 'c']) reports(s, key, 20, 0);
    reports(s, 'liar', 20, 20);
    expect(s.isFlagged('liar')).toBe(true);
    clock.advance(3_600_001);
    expect(s.negativeShare('liar')).toBeNull();
    expect(s.isFlagged('liar')).toBe(false);
  });

  it('makes a contributor a suspect after usage disputes from three distinct requesters, not counting flagged ones', () => {
    const { standing: s } = standing();
    for (const key of ['a', 'b', 'c']) reports(s, key, 20, 0);
    reports(s, 'liar', 20, 20);
    s.dispute('device', 'a');
    s.dispute('device', 'a');
    s.dispute('device', 'liar');
    s.dispute('device', 'b');
    expect(s.isSuspect('device')).toBe(false);
    s.dispute('device', 'c');
    expect(s.isSuspect('device')).toBe(true);
  });
});
