import { InvalidInputError } from '../../protocol/errors.ts';

/** Most jobs one worker runs at once. */
export const MAX_SLOTS = 64;

/** Checks a number of job slots (0–64), or throws an InvalidInputError that says what is allowed. */
export function checkSlots(slots: number): number {
  if (!Number.isInteger(slots) || slots < 0 || slots > MAX_SLOTS)
    throw new InvalidInputError(`Slots must be a whole number from 0 to ${MAX_SLOTS}; got ${slots}.`);
  return slots;
}
