/**
 * Makes typed errors survive comlink: the worker sends {@link SerializedError}, the page
 * rebuilds the subclass. Comlink's own handler keeps only name and message, so `instanceof`
 * and `code` would be lost. Install on both sides before the first call.
 */
import { transferHandlers, type TransferHandler } from 'comlink';
import { reviveError, serializeError, type SerializedError } from './errors.ts';

let installed = false;

export function installErrorTransfer(): void {
  if (installed) return;
  const base = transferHandlers.get('throw');
  if (base === undefined) throw new Error('comlink has no "throw" transfer handler');
  const handler: TransferHandler<{ value: unknown }, { error: SerializedError }> = {
    canHandle: (value): value is { value: unknown } => base.canHandle(value),
    serialize: ({ value }) => [{ error: serializeError(value) }, []],
    deserialize: ({ error }) => {
      throw reviveError(error);
    },
  };
  transferHandlers.set('throw', handler);
  installed = true;
}
