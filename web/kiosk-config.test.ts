import { describe, expect, it } from 'vitest';
import { fetchKioskConfig, KioskConfigError, kioskConfigFromParams, kioskRequested, kioskUrl, resolveKioskConfig } from './kiosk-config.ts';

const TOKEN = 'A'.repeat(43);
const serve =
  (body: string, type = 'application/json', status = 200): typeof fetch =>
  async () =>
    new Response(body, { status, headers: { 'content-type': type } });
const reasonOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'resolved',
    (err: unknown) => (err instanceof KioskConfigError ? err.reason : `other: ${String(err)}`),
  );

describe('kiosk settings', () => {
  it('come from the address, with controls, and round-trip through the fleet page’s kiosk address', () => {
    const address = kioskUrl('https://app.example/?x=1', TOKEN, 'PC 01');
    expect(kioskRequested(new URL(address).search)).toBe(true);
    expect(kioskConfigFromParams(new URL(address).search)).toEqual({ enroll: TOKEN, label: 'PC 01', autostart: true });
    const config = kioskConfigFromParams(`?kiosk=1&enroll=${TOKEN}&autostart=0&duty=50&schedule=22:00-06:00,12:00-13:00`);
    expect(config).toEqual({
      enroll: TOKEN,
      autostart: false,
      controls: {
        dutyCycle: 50,
        schedule: [
          { start: '22:00', end: '06:00' },
          { start: '12:00', end: '13:00' },
        ],
      },
    });
    expect(kioskRequested('?kiosk=0')).toBe(false);
    expect(kioskRequested('?enroll=x')).toBe(false);
  });

  it('refuse bad values in words that name them', () => {
    const refuse = (search: string): string => {
      try {
        kioskConfigFromParams(search);
        return 'accepted';
      } catch (err) {
        return err instanceof KioskConfigError ? `${err.reason}: ${err.detail}` : String(err);
      }
    };
    expect(refuse(`?kiosk=1&enroll=${TOKEN}&duty=60`)).toMatch(/^malformed: .*dutyCycle is 25, 50, 75 or 100/);
    expect(refuse(`?kiosk=1&enroll=${TOKEN}&schedule=25:00-06:00`)).toMatch(/schedule "25:00-06:00": Hours go from 00 to 23/);
    expect(refuse(`?kiosk=1&enroll=${TOKEN}&schedule=22:00`)).toMatch(/schedule "22:00": Write times as HH:MM-HH:MM/);
    expect(refuse(`?kiosk=1&enroll=${TOKEN}&autostart=yes`)).toMatch(/autostart/);
    expect(refuse('?kiosk=1&enroll=short')).toMatch(/too short/);
  });

  it('come from /kiosk.json when the address has no token; a missing or malformed file is told apart', async () => {
    const file = JSON.stringify({ enroll: TOKEN, label: 'Lab', controls: { dutyCycle: 25 } });
    const location = { search: '?kiosk=1', href: 'https://app.example/?kiosk=1' };
    expect(await resolveKioskConfig(location, serve(file))).toEqual({
      enroll: TOKEN,
      label: 'Lab',
      autostart: true,
      controls: { dutyCycle: 25 },
    });
    const url = new URL('https://app.example/kiosk.json');
    // The app server answers unknown paths with the page itself.
    expect(await reasonOf(fetchKioskConfig(url, serve('<!doctype html>', 'text/html')))).toBe('missing');
    expect(await reasonOf(fetchKioskConfig(url, serve('{}', 'application/json', 404)))).toBe('missing');
    expect(await reasonOf(fetchKioskConfig(url, serve('{"enroll": ')))).toBe('malformed');
    expect(await reasonOf(fetchKioskConfig(url, serve(JSON.stringify({ enroll: TOKEN, wakeLock: 'yes' }))))).toBe('malformed');
  });
});
