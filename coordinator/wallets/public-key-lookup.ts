/**
 * Reads a wallet's public key from the chain with its `get_public_key` get-method, for the
 * wallets whose key the verifier cannot read from a stateInit it knows (v1–v2 wallets,
 * custom contracts, or a deployed wallet whose app sent no stateInit).
 *
 * Two implementations, one per payout chain: `SandboxChain.publicKeys()` on the in-process
 * @ton/sandbox chain, and {@link tonClientPublicKeyLookup} on `@ton/ton`'s `TonClient`
 * (toncenter HTTP API v2). {@link askForPublicKey} bounds either with a timeout and turns its
 * failures into typed refusals.
 */
import type { Address, TupleReader } from '@ton/core';
import type { TonClient } from '@ton/ton';
import { WalletAuthError } from './errors.ts';

/** What the chain says about a wallet's key. */
export type PublicKeyAnswer =
  | { readonly kind: 'key'; /** Ed25519 public key, 32 bytes. */ readonly publicKey: Buffer }
  | { readonly kind: 'none'; /** Why there is no key, in words for the refusal. */ readonly why: string };

/** Asks a chain for a wallet's public key. */
export interface PublicKeyLookup {
  /** The chain asked, in words shown to the contributor (e.g. "TON testnet"; never the endpoint URL). */
  readonly chainName: string;
  /**
   * Runs `get_public_key` on `address`. Resolves `none` when the account is not active or the
   * method is missing or answers no 256-bit integer; rejects when the chain cannot be asked.
   */
  getPublicKey(address: Address): Promise<PublicKeyAnswer>;
}

/** Default limit for one lookup, ms. */
export const PUBLIC_KEY_LOOKUP_TIMEOUT_MS = 5_000;

/** The chain could not be asked for the wallet's key (timeout or endpoint failure); retrying may work. */
export abstract class PublicKeyLookupError extends WalletAuthError {}

/** The chain did not answer `get_public_key` in time. */
export class PublicKeyLookupTimeoutError extends PublicKeyLookupError {
  constructor(address: string, chainName: string, timeoutMs: number) {
    super(
      'public-key-lookup-timeout',
      `Reading the public key of wallet ${address} from ${chainName} took longer than ${timeoutMs} ms. ` +
        'Try connecting again in a minute; if it keeps failing, the coordinator operator should check its TON endpoint.',
      { address, chainName, timeoutMs },
    );
  }
}

/**
 * The chain endpoint failed while running `get_public_key`. The endpoint's own words stay in
 * `cause`, off the wire: they may name the endpoint.
 */
export class PublicKeyLookupFailedError extends PublicKeyLookupError {
  constructor(address: string, chainName: string, cause: unknown) {
    super(
      'public-key-lookup-failed',
      `Could not read the public key of wallet ${address} from ${chainName}. ` +
        'Try connecting again in a minute; if it keeps failing, the coordinator operator should check its TON endpoint.',
      { address, chainName },
    );
    this.cause = cause;
  }
}

/**
 * Runs `lookup` for `address` within `timeoutMs`. Resolves with its answer; rejects with
 * {@link PublicKeyLookupTimeoutError} or {@link PublicKeyLookupFailedError}.
 */
export async function askForPublicKey(
  lookup: PublicKeyLookup,
  address: Address,
  timeoutMs: number = PUBLIC_KEY_LOOKUP_TIMEOUT_MS,
): Promise<PublicKeyAnswer> {
  const shown = address.toRawString();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PublicKeyLookupTimeoutError(shown, lookup.chainName, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([
      lookup.getPublicKey(address).catch((err: unknown) => {
        throw new PublicKeyLookupFailedError(shown, lookup.chainName, err);
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `get_public_key` through toncenter's HTTP API (`getAddressInformation`, then
 * `runGetMethod`). A non-zero exit code is an answer (no such method), not a failure.
 */
export function tonClientPublicKeyLookup(client: TonClient, chainName: string): PublicKeyLookup {
  return {
    chainName,
    async getPublicKey(address) {
      const state = await client.getContractState(address);
      if (state.state !== 'active') return notActive(state.state, chainName);
      const result = await client.runMethodWithError(address, 'get_public_key');
      if (result.exit_code !== 0) return noGetPublicKey(result.exit_code);
      return publicKeyFromStack(result.stack);
    },
  };
}

/** The answer for an account that is not active (`uninit`, `frozen`, or unknown). */
export function notActive(state: string, chainName: string): PublicKeyAnswer {
  const words = state === 'frozen' ? 'frozen' : 'not deployed';
  return {
    kind: 'none',
    why: `the wallet is ${words} on ${chainName}: send one transaction from it first, or use a v3R2, v4R2 or v5R1 wallet`,
  };
}

/** The answer for a get-method that exited with `exitCode` ≠ 0 (11 or 32: no such method). */
export function noGetPublicKey(exitCode: number): PublicKeyAnswer {
  return { kind: 'none', why: `its contract has no get_public_key get-method (exit code ${exitCode})` };
}

/** The key on top of `get_public_key`'s result stack. */
export function publicKeyFromStack(stack: TupleReader): PublicKeyAnswer {
  let value: bigint | null = null;
  try {
    value = stack.remaining > 0 ? stack.readBigNumberOpt() : null;
  } catch {
    // Not an integer: answered below like no key.
  }
  if (value === null || value < 0n || value >= 1n << 256n) {
    return { kind: 'none', why: 'its get_public_key get-method returned no 256-bit key' };
  }
  return { kind: 'key', publicKey: Buffer.from(value.toString(16).padStart(64, '0'), 'hex') };
}
