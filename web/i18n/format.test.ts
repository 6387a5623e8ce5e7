import { describe, expect, it } from 'vitest';
import { formatAgo, formatBytes, formatTon, formatTonRange, nanoToDecimal, twoSignificant } from './format.ts';
import { setLanguage, tp } from './index.ts';

describe('formatting in the chosen language', () => {
  it('writes TON exactly from nanoTON, with the language’s decimal sign', async () => {
    expect(nanoToDecimal(1_234_567_891n)).toBe('1.234567891');
    expect(nanoToDecimal(-5n)).toBe('-0.000000005');
    await setLanguage('en', { save: false });
    expect(formatTon(1_234_567_891n, 'exact')).toBe('1.234567891 TON');
    expect(formatTon('1234567891234', 'exact')).toBe('1,234.567891234 TON');
    expect(formatTon(12_345_678n)).toBe('0.0123 TON');
    expect(formatTon(2_345_678_900n)).toBe('2.35 TON');
    await setLanguage('ru', { save: false });
    expect(formatTon(1_234_567_891n, 'exact')).toBe('1,234567891 TON');
    expect(formatTonRange(31_000_000n, 94_000_000n)).toBe('0,031–0,094 TON');
    await setLanguage('en', { save: false });
  });

  it('rounds estimates to two significant digits', async () => {
    expect(twoSignificant(31_234_567n)).toBe(31_000_000n);
    expect(twoSignificant(94_500_000n)).toBe(95_000_000n);
    expect(twoSignificant(7n)).toBe(7n);
    expect(twoSignificant(0n)).toBe(0n);
  });

  it('says sizes, times and counts the language’s way', async () => {
    await setLanguage('en', { save: false });
    expect(formatBytes(4_943_773)).toBe('4.9 MB');
    expect(formatAgo(1_000, 4_000)).toBe('3 seconds ago');
    expect(tp('contrib.jobsIn10', 1)).toBe('1 job in 10 min');
    expect(tp('contrib.jobsIn10', 19)).toBe('19 jobs in 10 min');
    await setLanguage('ru', { save: false });
    expect(formatBytes(4_943_773)).toBe('4,9 МБ');
    expect(formatAgo(1_000, 4_000)).toBe('3 секунды назад');
    expect(tp('contrib.jobsIn10', 1)).toBe('1 задание за 10 мин');
    expect(tp('contrib.jobsIn10', 3)).toBe('3 задания за 10 мин');
    expect(tp('contrib.jobsIn10', 19)).toBe('19 заданий за 10 мин');
    await setLanguage('ko', { save: false });
    expect(formatAgo(1_000, 4_000)).toBe('3초 전');
    expect(tp('contrib.jobsIn10', 19)).toBe('10분 동안 작업 19건');
    await setLanguage('en', { save: false });
  });
});
