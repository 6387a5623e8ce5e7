/**
 * The coordinator's platform dependencies, behind small interfaces so that time-dependent
 * logic (leases, heartbeats, quotas) is tested without sleeping.
 */
import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { asLogger, createLog } from '../operator/log.ts';

/** The time source. Milliseconds since the Unix epoch. */
export interface Clock {
  now(): number;
}

/** Where the coordinator reports what it does. Never given payloads, results or secrets. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The default: one JSON line per entry on stdout (pino), with the time and `"service":"coordinator"`. */
export const consoleLogger: Logger = asLogger(createLog('coordinator'));

/** A random id of `bytes` bytes, base64url (16 bytes → 22 characters). */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Bytes a base64url string (without padding) decodes to. */
export function base64urlBytes(text: string): number {
  return Math.floor((text.length * 3) / 4);
}

/** The message of anything thrown, without its stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : inspect(err);
}

/** The message of anything thrown, for logs. */
export function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
