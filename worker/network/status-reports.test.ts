/** When a contributor sends `status`: on change, when forced, and with a fresh pace now and then, never more. */
import { describe, expect, it } from 'vitest';
import { StatusReports } from './status-reports.ts';

const visible = { visibility: 'visible', pausedBy: null, label: undefined } as const;
const pace = { jobsPerMinute: 2, busyFraction: 0.5 };

describe('status reports', () => {
  it('sends the first, then only a change, a forced one or a fresh pace after 15 s', () => {
    const reports = new StatusReports();
    let measured = 0;
    const measure = () => (measured++, pace);
    expect(reports.next(0, visible, measure, false)).toEqual({ v: 1, type: 'status', visibility: 'visible', pausedBy: null, pace });
    expect(reports.next(14_999, visible, measure, false)).toBeNull();
    expect(measured).toBe(1);
    expect(reports.next(15_000, visible, measure, false)).toMatchObject({ pace });
    expect(reports.next(15_001, { ...visible, visibility: 'hidden' }, measure, false)).toMatchObject({ visibility: 'hidden' });
    expect(reports.next(15_002, { ...visible, visibility: 'hidden' }, measure, true)).toMatchObject({ visibility: 'hidden' });
    expect(reports.next(15_003, { ...visible, visibility: 'hidden', pausedBy: 'user', label: 'lab-3' }, () => undefined, false)).toEqual({
      v: 1,
      type: 'status',
      visibility: 'hidden',
      pausedBy: 'user',
      label: 'lab-3',
    });
    expect(reports.next(15_004, { ...visible, visibility: 'hidden', pausedBy: 'user', label: 'lab-3' }, measure, false)).toBeNull();
    expect(measured).toBe(4);
  });
});
