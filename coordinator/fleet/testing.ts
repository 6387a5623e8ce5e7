/** Shared by the fleet tests and the kiosk e2e: an owner's wallet session, proven with a real signed `ton_proof`. */
import type { TestWallet } from '../wallets/test-wallet.ts';

const post = (url: string, path: string, body: unknown): Promise<Response> =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * Proves `wallet` to the coordinator at `url` from a made-up device and returns the owner's
 * session (the Bearer token of the owner routes; `scope: 'device'` gets a device's wallet
 * session instead). `nowMs` is the coordinator's clock; `deviceKey`, the device's identity key
 * the proof is bound to (default: a made-up one).
 */
export async function proveOwner(
  url: string,
  wallet: TestWallet,
  nowMs: number,
  domain = '127.0.0.1:5173',
  scope: 'owner' | 'device' = 'owner',
  deviceKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'),
): Promise<string> {
  const issued = (await (await post(url, '/v1/wallet/payload', { deviceKey })).json()) as { payload: string };
  const timestamp = Math.floor(nowMs / 1000);
  const res = await post(url, '/v1/wallet/proof', {
    deviceKey,
    address: wallet.address,
    network: '-3',
    scope,
    publicKey: wallet.publicKey,
    proof: {
      timestamp,
      domain: { lengthBytes: Buffer.byteLength(domain), value: domain },
      signature: wallet.signProof(domain, timestamp, issued.payload),
      payload: issued.payload,
      stateInit: wallet.stateInit,
    },
  });
  if (res.status !== 200) throw new Error(`the owner's proof was refused: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { session: string }).session;
}

/** Calls an owner route with the owner's session as Bearer. */
export function ownerCall(url: string, session: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}
