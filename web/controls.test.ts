import { describe, expect, it } from 'vitest';
import { formatSchedule, parseSchedule, parseWhole } from './controls.ts';

const windows = (text: string) => {
  const r = parseSchedule(text);
  return r.ok ? r.value : null;
};

describe('schedule text', () => {
  it('reads windows across midnight, several at once, and an empty text as no schedule', () => {
    expect(windows('22:00-07:00')).toEqual([{ start: '22:00', end: '07:00' }]);
    expect(windows(' 9:30 – 12:00 , 22:00-07:00 ')).toEqual([
      { start: '09:30', end: '12:00' },
      { start: '22:00', end: '07:00' },
    ]);
    expect(windows('')).toEqual([]);
    expect(formatSchedule(windows('9:30-12:00, 22:00-07:00') ?? [])).toBe('09:30-12:00, 22:00-07:00');
  });

  it('says what is wrong, in words the page can show beside the field', () => {
    expect(parseSchedule('after lunch')).toEqual({ ok: false, error: 'controls.scheduleInvalid' });
    expect(parseSchedule('22:00')).toEqual({ ok: false, error: 'controls.scheduleInvalid' });
    expect(parseSchedule('25:00-07:00')).toEqual({ ok: false, error: 'controls.scheduleTime' });
    expect(parseSchedule('08:00-8:00')).toEqual({ ok: false, error: 'controls.scheduleSame' });
  });
});

describe('whole numbers', () => {
  it('takes a number in range or nothing, and refuses the rest', () => {
    expect(parseWhole(' 50 ', 0, 100, 'e')).toEqual({ ok: true, value: 50 });
    expect(parseWhole('', 0, 100, 'e')).toEqual({ ok: true, value: null });
    expect(parseWhole('150', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
    expect(parseWhole('4.5', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
    expect(parseWhole('-1', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
  });
});
