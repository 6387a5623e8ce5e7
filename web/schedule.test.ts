import { describe, expect, it } from 'vitest';
import { kioskConfigFromParams } from './kiosk-config.ts';
import { formatSchedule, parseSchedule } from './schedule.ts';

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
    expect(parseSchedule(Array.from({ length: 9 }, (_, i) => `0${i}:00-0${i}:30`).join(','))).toEqual({
      ok: false,
      error: 'controls.scheduleTooMany',
    });
  });
});

describe('the same grammar in a kiosk address', () => {
  const TOKEN = 'A'.repeat(43);
  const schedule = (text: string) =>
    kioskConfigFromParams(`?kiosk=1&enroll=${TOKEN}&schedule=${encodeURIComponent(text)}`)?.controls?.schedule;

  it('reads what the Settings card reads, to the same windows', () => {
    for (const text of ['22:00-07:00', ' 9:30 – 12:00 , 22:00-07:00 ', '22:00-06:00,12:00-13:00']) {
      const card = parseSchedule(text);
      expect(card.ok).toBe(true);
      expect(schedule(text)).toEqual(card.ok ? card.value : null);
    }
  });

  it('refuses what the Settings card refuses', () => {
    for (const text of ['after lunch', '22:00', '25:00-07:00', '08:00-8:00']) {
      expect(parseSchedule(text).ok).toBe(false);
      expect(() => schedule(text)).toThrow(/schedule/);
    }
  });
});
