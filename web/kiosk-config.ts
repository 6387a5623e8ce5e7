/**
 * Kiosk mode's settings: from the address (`?kiosk=1&enroll=<token>&label=<name>&autostart=1`,
 * optionally `&duty=50&schedule=22:00-06:00,12:00-13:00`), or, with `?kiosk=1` and no token,
 * from the served `/kiosk.json` (same fields as JSON; see docs/kiosk.md). Checked with
 * valibot: a bad value is refused in words that say what to fix.
 */
import * as v from 'valibot';
import type { TimeWindow } from '../worker/controls/rules.ts';
import { t } from './i18n/index.ts';
import { parseSchedule } from './schedule.ts';

const HHMM = v.pipe(v.string(), v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time is HH:MM, 00:00 to 23:59'));

/** The kiosk file's schema (`/kiosk.json`). */
export const KioskFile = v.strictObject({
  /** The enrollment token the owner issued on the fleet page. */
  enroll: v.pipe(v.string(), v.minLength(16, 'the enrollment token is too short'), v.maxLength(200)),
  /** This machine's name on the owner's fleet page. */
  label: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(64))),
  /** Start contributing without a click (default true). */
  autostart: v.optional(v.boolean(), true),
  /** Another coordinator than the page's. */
  coordinatorUrl: v.optional(v.pipe(v.string(), v.url('coordinatorUrl must be an absolute http(s) address'))),
  /** Owner rules applied before starting: a partial of the Controls card's rules, checked by the worker. */
  controls: v.optional(
    v.looseObject({
      dutyCycle: v.exactOptional(v.picklist([25, 50, 75, 100], 'dutyCycle is 25, 50, 75 or 100')),
      schedule: v.exactOptional(v.array(v.strictObject({ start: HHMM, end: HHMM }))),
    }),
  ),
});
export type KioskConfig = v.InferOutput<typeof KioskFile>;

/** Why kiosk mode cannot start; each has its own words on the page. */
export type KioskConfigReason = 'malformed' | 'missing';

export class KioskConfigError extends Error {
  override readonly name = 'KioskConfigError';
  constructor(
    readonly reason: KioskConfigReason,
    /** What is wrong, in the checker's words (English, technical); the page adds what to do. */
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export { kioskRequested } from './config.ts';

function check(input: unknown): KioskConfig {
  const result = v.safeParse(KioskFile, input);
  if (!result.success) throw new KioskConfigError('malformed', v.summarize(result.issues).slice(0, 500));
  return result.output;
}

/** The address's `schedule=`, in the Settings card's grammar (./schedule.ts); anything else throws. */
function scheduleFromParam(text: string): TimeWindow[] {
  const checked = parseSchedule(text);
  if (!checked.ok) throw new KioskConfigError('malformed', `schedule "${text}": ${t(checked.error)}`);
  return checked.value;
}

/** The kiosk settings from the address's query string. */
export function kioskConfigFromParams(search: string): KioskConfig | null {
  const params = new URLSearchParams(search);
  const enroll = params.get('enroll');
  if (enroll === null) return null;
  const autostart = params.get('autostart');
  if (autostart !== null && !['0', '1', 'true', 'false'].includes(autostart)) {
    throw new KioskConfigError('malformed', `autostart is "${autostart}"; use 1 or 0`);
  }
  const duty = params.get('duty');
  const schedule = params.get('schedule');
  const controls = {
    ...(duty !== null && { dutyCycle: Number(duty) }),
    ...(schedule !== null && { schedule: scheduleFromParam(schedule) }),
  };
  const label = params.get('label');
  const coordinatorUrl = params.get('coordinator');
  return check({
    enroll,
    ...(label !== null && { label }),
    ...(autostart !== null && { autostart: autostart === '1' || autostart === 'true' }),
    ...(coordinatorUrl !== null && { coordinatorUrl }),
    ...(Object.keys(controls).length > 0 && { controls }),
  });
}

/** The served `/kiosk.json`; `missing` when there is none (the app server answers other paths with the page). */
export async function fetchKioskConfig(url: URL, doFetch: typeof fetch = fetch): Promise<KioskConfig> {
  let response: Response;
  try {
    response = await doFetch(url, { cache: 'no-store' });
  } catch (err) {
    throw new KioskConfigError('missing', `${url.pathname} could not be fetched (${String(err)})`);
  }
  const type = response.headers.get('content-type') ?? '';
  if (!response.ok || !type.includes('json'))
    throw new KioskConfigError('missing', `${url.pathname} is not served (HTTP ${response.status})`);
  let data: unknown;
  try {
    data = await response.json();
  } catch {
    throw new KioskConfigError('malformed', `${url.pathname} is not valid JSON`);
  }
  return check(data);
}

/** Kiosk settings from the address, else from `/kiosk.json` next to the page. */
export async function resolveKioskConfig(location: Pick<Location, 'search' | 'href'>, doFetch: typeof fetch = fetch): Promise<KioskConfig> {
  return kioskConfigFromParams(location.search) ?? (await fetchKioskConfig(new URL('/kiosk.json', location.href), doFetch));
}

/** The address to open on a machine: the app with `kiosk=1`, the token and its name. */
export function kioskUrl(appUrl: string, token: string, label?: string): string {
  const url = new URL(appUrl);
  url.search = '';
  url.hash = '';
  url.searchParams.set('kiosk', '1');
  url.searchParams.set('enroll', token);
  if (label !== undefined && label !== '') url.searchParams.set('label', label);
  url.searchParams.set('autostart', '1');
  return url.href;
}
