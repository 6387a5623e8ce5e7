/**
 * What a `hello.session` token binds a device to: the wallet it earns for. Two kinds of token
 * resolve here: a wallet session (`POST /v1/wallet/proof`) and an enrollment session
 * (`POST /v1/enroll`, kiosk and lab machines earning for their owner).
 */

/** The outcome of resolving a token for one device. */
export type SessionBinding =
  | {
      ok: true;
      /** The wallet's raw address, "0:hex". */
      wallet: string;
      /** The device's name its owner gave it (enrolled devices). */
      label?: string;
    }
  | {
      ok: false;
      /** `unknown`: no such token for this device; `revoked`/`expired`: an enrollment that ended. */
      reason: 'unknown' | 'revoked' | 'expired';
      /** In words, with what to do; sent to the device as a non-fatal error. */
      message: string;
      /** For an enrollment that ended: the owner the device no longer earns for. */
      endedWallet?: string;
    };

/** Resolves `hello.session` tokens. */
export interface SessionResolver {
  resolve(token: string, deviceKey: string): Promise<SessionBinding>;
}

export const UNKNOWN_SESSION: SessionBinding = {
  ok: false,
  reason: 'unknown',
  message: 'The wallet session is unknown, expired or for another device; contributing without it. Reconnect the wallet.',
};

/** Tries each resolver in turn; the first binding that is not `unknown` wins. */
export function firstResolver(resolvers: readonly SessionResolver[]): SessionResolver {
  return {
    async resolve(token, deviceKey) {
      for (const resolver of resolvers) {
        const binding = await resolver.resolve(token, deviceKey);
        if (binding.ok || binding.reason !== 'unknown') return binding;
      }
      return UNKNOWN_SESSION;
    },
  };
}
