/**
 * The structured log as the operator's processes use it: the pino logger itself lives with the
 * coordinator (coordinator/log.ts), which depends on no operator code; here are the adapters the
 * operator's wiring hands to the money and verification services.
 */
import type { Logger as Pino } from 'pino';

export { asLogger, createLog, LEVELS, type Level } from '../coordinator/log.ts';

/** `(message, err?)` callbacks of the money and verification services, as error lines of `log`. */
export function errorCallback(log: Pino, component: string): (message: string, err?: unknown) => void {
  return (message, err) => log.error({ component, ...(err === undefined ? {} : { err }) }, message);
}

/** `(line)` callbacks, as info lines of `log`. */
export function lineCallback(log: Pino, component: string): (line: string) => void {
  return (line) => log.info({ component }, line);
}
