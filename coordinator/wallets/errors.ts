/**
 * Why a wallet proof or an enrollment token was refused.
 *
 * Every class extends {@link SpinneretError} with code `INVALID_INPUT`, so the wire contract
 * (`{name, code, message}`) stays as it is; the `reason` (also in `details.reason`) tells the
 * failures apart for callers, logs and the page, and `instanceof` does so in the coordinator.
 */
import { SpinneretError } from '../../protocol/errors.ts';

/** One value per subclass below. */
export type WalletAuthReason =
  | 'malformed'
  | 'domain-not-allowed'
  | 'proof-expired'
  | 'proof-from-future'
  | 'payload-unknown'
  | 'payload-expired'
  | 'payload-replayed'
  | 'payload-other-device'
  | 'state-init-mismatch'
  | 'public-key-unavailable'
  | 'public-key-lookup-timeout'
  | 'public-key-lookup-failed'
  | 'public-key-mismatch'
  | 'signature-invalid'
  | 'token-unknown'
  | 'token-expired'
  | 'token-revoked'
  | 'token-device-limit'
  | 'token-wrong-scope';

/** Base of every refusal in `coordinator/wallets/`. */
export abstract class WalletAuthError extends SpinneretError {
  readonly reason: WalletAuthReason;

  constructor(reason: WalletAuthReason, message: string, details?: Record<string, unknown>) {
    super('INVALID_INPUT', message, { reason, ...details });
    this.reason = reason;
  }
}

/** A field of the proof does not parse (address, base64, BoC, lengths). */
export class TonProofMalformedError extends WalletAuthError {
  constructor(what: string) {
    super('malformed', `The wallet proof is malformed (${what}). Reconnect the wallet and try again.`, { what });
  }
}

/** The proof was made for a site this coordinator does not serve. */
export class TonProofDomainError extends WalletAuthError {
  constructor(domain: string) {
    super(
      'domain-not-allowed',
      `The wallet proof was made for "${domain}", not this site. Open Spinneret from its own address and reconnect.`,
      {
        domain,
      },
    );
  }
}

/** The proof's timestamp is older than the allowed age. */
export class TonProofExpiredError extends WalletAuthError {
  constructor(ageSeconds: number, maxAgeSeconds: number) {
    super('proof-expired', `The wallet proof is ${ageSeconds} s old (at most ${maxAgeSeconds} s allowed). Reconnect the wallet.`, {
      ageSeconds,
      maxAgeSeconds,
    });
  }
}

/** The proof's timestamp is ahead of the coordinator's clock by more than the allowed skew. */
export class TonProofFromFutureError extends WalletAuthError {
  constructor(aheadSeconds: number) {
    super('proof-from-future', `The wallet proof is dated ${aheadSeconds} s in the future. Check the device's clock, then reconnect.`, {
      aheadSeconds,
    });
  }
}

/** The payload was never issued by this coordinator (or was forgotten long after it expired). */
export class PayloadUnknownError extends WalletAuthError {
  constructor() {
    super('payload-unknown', 'The wallet proof carries a payload this coordinator did not issue. Reload the page and reconnect.');
  }
}

/** The payload was issued but its time ran out. */
export class PayloadExpiredError extends WalletAuthError {
  constructor() {
    super('payload-expired', 'The wallet proof payload has expired. Reload the page and reconnect.');
  }
}

/** The payload was already used by an accepted proof. */
export class PayloadReplayedError extends WalletAuthError {
  constructor() {
    super('payload-replayed', 'This wallet proof was already used. Reconnect the wallet to make a new one.');
  }
}

/** The payload was issued to another device key. */
export class PayloadDeviceMismatchError extends WalletAuthError {
  constructor() {
    super('payload-other-device', 'The wallet proof payload was issued to another device. Reconnect the wallet from this device.');
  }
}

/** The stateInit sent with the proof is not the contract at the claimed address. */
export class StateInitMismatchError extends WalletAuthError {
  constructor(address: string) {
    super('state-init-mismatch', `The wallet's stateInit does not belong to ${address}. Reconnect the wallet.`, { address });
  }
}

/** The wallet's public key could not be read from its stateInit nor from the chain. */
export class PublicKeyUnavailableError extends WalletAuthError {
  constructor(address: string, why: string) {
    super(
      'public-key-unavailable',
      `Could not find the public key of wallet ${address} (${why}). Use a v3R2, v4R2 or v5R1 wallet, or a deployed wallet with get_public_key.`,
      {
        address,
        why,
      },
    );
  }
}

/** The public key the wallet reported differs from the one its contract holds. */
export class PublicKeyMismatchError extends WalletAuthError {
  constructor(address: string) {
    super('public-key-mismatch', `The public key reported for ${address} is not the one its contract holds. Reconnect the wallet.`, {
      address,
    });
  }
}

/** The Ed25519 signature does not verify under the wallet's public key. */
export class TonProofSignatureError extends WalletAuthError {
  constructor(address: string) {
    super('signature-invalid', `The wallet proof signature for ${address} is invalid. Reconnect the wallet.`, { address });
  }
}

/** The enrollment token is not one this coordinator issued. */
export class EnrollmentTokenUnknownError extends WalletAuthError {
  constructor() {
    super('token-unknown', 'The enrollment token is not valid. Ask the owner for a new one.');
  }
}

/** The enrollment token is past its expiry. */
export class EnrollmentTokenExpiredError extends WalletAuthError {
  constructor(id: string) {
    super('token-expired', 'The enrollment token has expired. Ask the owner for a new one.', { id });
  }
}

/** The owner revoked the enrollment token. */
export class EnrollmentTokenRevokedError extends WalletAuthError {
  constructor(id: string) {
    super('token-revoked', 'The enrollment token was revoked by its owner. Ask the owner for a new one.', { id });
  }
}

/** The token already enrolled as many devices as it allows. */
export class EnrollmentDeviceLimitError extends WalletAuthError {
  constructor(id: string, maxDevices: number) {
    super(
      'token-device-limit',
      `The enrollment token is already used by ${maxDevices} device(s). Ask the owner for a token for this device.`,
      {
        id,
        maxDevices,
      },
    );
  }
}

/** The token was issued for something else (e.g. a read-only `monitor` token used to enroll). */
export class EnrollmentScopeError extends WalletAuthError {
  constructor(id: string, scope: string, needed: string) {
    super('token-wrong-scope', `This token is for "${scope}", not "${needed}". Ask the owner for a "${needed}" token.`, {
      id,
      scope,
      needed,
    });
  }
}
