/**
 * The schedule's one text form, shared by the Settings card and kiosk addresses
 * (`?schedule=22:00-06:00,12:00-13:00`, docs/kiosk.md): local-time windows `H:MM-HH:MM`
 * (a hyphen or an en dash, spaces allowed), separated by commas, at most 8, each with different
 * start and end; a window may cross midnight. Empty text: no schedule.
 */
import type { TimeWindow } from '../worker/controls/rules.ts';

/** A field's check: the value to save, or the words of what is wrong (a catalog key). */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/** Most windows in one schedule. */
export const MAX_WINDOWS = 8;

/** `22:00-07:00, 12:00–13:00` → windows, times as `HH:MM`. */
export function parseSchedule(text: string): Checked<TimeWindow[]> {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length > MAX_WINDOWS) return { ok: false, error: 'controls.scheduleTooMany' };
  const windows: TimeWindow[] = [];
  for (const part of parts) {
    const match = /^(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})$/.exec(part);
    if (match === null) return { ok: false, error: 'controls.scheduleInvalid' };
    const [, h1 = '', m1 = '', h2 = '', m2 = ''] = match;
    if (Number(h1) > 23 || Number(h2) > 23 || Number(m1) > 59 || Number(m2) > 59) return { ok: false, error: 'controls.scheduleTime' };
    const start = `${h1.padStart(2, '0')}:${m1}`;
    const end = `${h2.padStart(2, '0')}:${m2}`;
    if (start === end) return { ok: false, error: 'controls.scheduleSame' };
    windows.push({ start, end });
  }
  return { ok: true, value: windows };
}

/** Windows → the text {@link parseSchedule} reads back. */
export function formatSchedule(windows: readonly TimeWindow[]): string {
  return windows.map((w) => `${w.start}-${w.end}`).join(', ');
}
