import { describe, expect, it } from 'vitest';
import { buildCatalogs, detectLanguage } from './index.ts';

describe('i18n', () => {
  it('keys catalogs by area and language', () => {
    const c = buildCatalogs({ './en/app.json': { title: 'Hi' }, './ko/app.json': { title: '안녕' }, './xx/app.json': { title: '?' } });
    expect(c.en['app.title']).toBe('Hi');
    expect(c.ko['app.title']).toBe('안녕');
    expect(c.ru).toEqual({});
  });

  it('picks the saved language, then the browser’s, then English', () => {
    expect(detectLanguage('ru', ['ko-KR'])).toBe('ru');
    expect(detectLanguage(null, ['de-DE', 'ko-KR'])).toBe('ko');
    expect(detectLanguage('xx', ['de'])).toBe('en');
  });
});
