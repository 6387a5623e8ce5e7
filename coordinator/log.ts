/**
 * One structured logger for every part: pino, one JSON object a line on stdout, each with the
 * time (ISO 8601), the level, the service (`coordinator`, `gateway`, `modelhost`, `app`,
 * `start`) and the request or job ids the message concerns. Secrets never go in: fields named
 * like one (`secret`, `apiKey`, `mnemonic`, `token`, `authorization`…) are redacted as a last
 * guard, but callers pass ids, never keys.
 */
import { inspect } from 'node:util';
import pino, { type DestinationStream, type Logger as Pino } from 'pino';

/** Where the coordinator reports what it does. Never given payloads, results or secrets. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Paths pino censors wherever they appear one level down. */
const REDACT = [
  'secret',
  'apiKey',
  'mnemonic',
  'token',
  'password',
  'authorization',
  '*.secret',
  '*.apiKey',
  '*.mnemonic',
  '*.token',
  '*.password',
  '*.authorization',
  'req.headers.authorization',
];

export function createLog(service: string, options: { level?: Level; destination?: DestinationStream } = {}): Pino {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** The coordinator's {@link Logger} interface over a pino logger. */
export function asLogger(log: Pino): Logger {
  return {
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message),
  };
}

/** The default: one JSON line per entry on stdout, with the time and `"service":"coordinator"`. */
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
