import { describe, expect, it } from 'vitest';
import { formatSchedule, parseSchedule } from './controls.ts';

describe('schedule text', () => {
  it('reads windows across midnight, several at once, and an empty text as no schedule', () => {
    expect(parseSchedule('22:00-07:00')).toEqual([{ start: '22:00', end: '07:00' }]);
    expect(parseSchedule(' 9:30 – 12:00 , 22:00-07:00 ')).toEqual([
      { start: '09:30', end: '12:00' },
      { start: '22:00', end: '07:00' },
    ]);
    expect(parseSchedule('')).toEqual([]);
    expect(formatSchedule(parseSchedule('9:30-12:00, 22:00-07:00') ?? [])).toBe('09:30-12:00, 22:00-07:00');
  });

  it('returns null for text that is not a list of windows', () => {
    expect(parseSchedule('after lunch')).toBeNull();
    expect(parseSchedule('22:00')).toBeNull();
  });
});
