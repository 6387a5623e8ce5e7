/**
 * Amounts, sizes, dates and times in the chosen language, through `Intl`. Money stays exact:
 * nanoTON (bigint) become a decimal string first, which `Intl.NumberFormat` formats without
 * passing through a float; only rounded displays (ranges, rates) use numbers.
 */
import { language } from './index.ts';

const NANO = 1_000_000_000n;

/** nanoTON → an exact decimal string in TON, e.g. `1234567891n` → `"1.234567891"`. */
export function nanoToDecimal(nano: bigint): string {
  const sign = nano < 0n ? '-' : '';
  const abs = nano < 0n ? -nano : nano;
  const frac = (abs % NANO).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / NANO}${frac === '' ? '' : `.${frac}`}`;
}

/** nanoTON → TON as a float, for rounded displays and charts only (never for sums). */
export function nanoToTon(nano: bigint): number {
  return Number(nanoToDecimal(nano));
}

/**
 * An amount in TON in the chosen language, with its unit: exact (all nine decimals that are not
 * zero) or short (three significant digits below 1 TON, two decimals above).
 */
export function formatTon(nano: bigint | string, style: 'exact' | 'short' = 'short'): string {
  const value = typeof nano === 'string' ? BigInt(nano) : nano;
  const decimal = nanoToDecimal(value);
  const abs = value < 0n ? -value : value;
  const options: Intl.NumberFormatOptions =
    style === 'exact' ? { maximumFractionDigits: 9 } : abs >= NANO ? { maximumFractionDigits: 2 } : { maximumSignificantDigits: 3 };
  // A decimal string is formatted exactly (Intl.NumberFormat v3).
  return `${new Intl.NumberFormat(language(), options).format(decimal as unknown as number)} TON`;
}

/** A range of TON in two significant digits, e.g. "0.031–0.094 TON" ("0,031–0,094 TON" in Russian). */
export function formatTonRange(lowNano: bigint, highNano: bigint): string {
  const format = new Intl.NumberFormat(language(), { maximumSignificantDigits: 2 });
  const low = nanoToTon(lowNano);
  const high = nanoToTon(highNano);
  return `${low === high ? format.format(low) : format.formatRange(low, high)} TON`;
}

/** Rounds to two significant digits (what the estimate claims), in nanoTON. */
export function twoSignificant(nano: bigint): bigint {
  if (nano <= 0n) return 0n;
  const digits = nano.toString().length;
  if (digits <= 2) return nano;
  const scale = 10n ** BigInt(digits - 2);
  return ((nano + scale / 2n) / scale) * scale;
}

/** Bytes in the language's units: "4.9 MB", "4,9 МБ". */
export function formatBytes(bytes: number): string {
  const units: [number, string][] = [
    [1e9, 'gigabyte'],
    [1e6, 'megabyte'],
    [1e3, 'kilobyte'],
  ];
  const [divisor, unit] = units.find(([d]) => bytes >= d) ?? [1, 'byte'];
  return new Intl.NumberFormat(language(), { style: 'unit', unit, maximumSignificantDigits: 2 }).format(bytes / divisor);
}

/** "3 seconds ago", "3초 전", "3 секунды назад" (a time a moment ahead, from another clock, is "now"); `now` for tests. */
export function formatAgo(at: number, now = Date.now()): string {
  return relative(Math.min(at, now), now);
}

/** "in 20 seconds", "20초 후", "через 20 секунд" (a time just past is "now"). */
export function formatIn(at: number, now = Date.now()): string {
  return relative(Math.max(at, now), now);
}

function relative(at: number, now: number): string {
  const seconds = Math.round((at - now) / 1000);
  const format = new Intl.RelativeTimeFormat(language(), { numeric: 'auto' });
  if (Math.abs(seconds) < 60) return format.format(seconds, 'second');
  if (Math.abs(seconds) < 3600) return format.format(Math.round(seconds / 60), 'minute');
  if (Math.abs(seconds) < 86_400) return format.format(Math.round(seconds / 3600), 'hour');
  return format.format(Math.round(seconds / 86_400), 'day');
}

/** A length of time, "30 seconds", "30초", "30 секунд". */
export function formatDuration(ms: number): string {
  const [value, unit] =
    ms < 120_000
      ? [Math.round(ms / 1000), 'second']
      : ms < 7_200_000
        ? [Math.round(ms / 60_000), 'minute']
        : [Math.round(ms / 3_600_000), 'hour'];
  return new Intl.NumberFormat(language(), { style: 'unit', unit, unitDisplay: 'long' }).format(value);
}

/** A clock time, "14:05" or "2:05 PM" as the language writes it. */
export function formatTime(at: number): string {
  return new Intl.DateTimeFormat(language(), { hour: 'numeric', minute: '2-digit' }).format(at);
}

/** A date and time, short. */
export function formatDateTime(at: number): string {
  return new Intl.DateTimeFormat(language(), { dateStyle: 'medium', timeStyle: 'short' }).format(at);
}

/** A percentage from a 0–1 fraction. */
export function formatPercent(fraction: number): string {
  return new Intl.NumberFormat(language(), { style: 'percent', maximumFractionDigits: 0 }).format(fraction);
}
