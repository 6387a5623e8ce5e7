import { describe, expect, it } from 'vitest';
import { parseWhole } from './controls.ts';

describe('whole numbers', () => {
  it('takes a number in range or nothing, and refuses the rest', () => {
    expect(parseWhole(' 50 ', 0, 100, 'e')).toEqual({ ok: true, value: 50 });
    expect(parseWhole('', 0, 100, 'e')).toEqual({ ok: true, value: null });
    expect(parseWhole('150', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
    expect(parseWhole('4.5', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
    expect(parseWhole('-1', 0, 100, 'e')).toEqual({ ok: false, error: 'e' });
  });
});
