/** Where the coordinator reports what it does, and how anything thrown is written there. */
import { inspect } from 'node:util';
import { asLogger, createLog } from '../operator/log.ts';

/** Where the coordinator reports what it does. Never given payloads, results or secrets. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** The default: one JSON line per entry on stdout (pino), with the time and `"service":"coordinator"`. */
export const consoleLogger: Logger = asLogger(createLog('coordinator'));

/** The message of anything thrown, without its stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : inspect(err);
}

/** The message of anything thrown, for logs. */
export function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
