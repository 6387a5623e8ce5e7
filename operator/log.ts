/**
 * One structured logger for every part: pino, one JSON object a line on stdout, each with the
 * time (ISO 8601), the level, the service (`coordinator`, `gateway`, `modelhost`, `app`,
 * `start`) and the request or job ids the message concerns. Secrets never go in: fields named
 * like one (`secret`, `apiKey`, `mnemonic`, `token`, `authorization`…) are redacted as a last
 * guard, but callers pass ids, never keys.
 */
import pino, { type DestinationStream, type Logger as Pino } from 'pino';
import type { Logger } from '../coordinator/log.ts';

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

/** `(message, err?)` callbacks of the money and verification services, as error lines of `log`. */
export function errorCallback(log: Pino, component: string): (message: string, err?: unknown) => void {
  return (message, err) => log.error({ component, ...(err === undefined ? {} : { err }) }, message);
}

/** `(line)` callbacks, as info lines of `log`. */
export function lineCallback(log: Pino, component: string): (line: string) => void {
  return (line) => log.info({ component }, line);
}
