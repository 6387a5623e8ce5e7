/** Random ids and tokens the coordinator hands out, and the hashes it stores of secret ones. */
import { createHash, randomBytes } from 'node:crypto';

/** A random id of `bytes` bytes, base64url (16 bytes → 22 characters). */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
