/**
 * The device's keys, made once and kept: an Ed25519 identity key (signs the coordinator's
 * challenge) and an X25519 HPKE key (jobs are sealed to it). Both private keys are
 * non-extractable WebCrypto keys; IndexedDB stores them as CryptoKeys, so their bytes never
 * reach JavaScript.
 */
import { exportPublicKey, generateHpkeKeyPair, toB64url } from '../../protocol/envelope.ts';
import { IdbStore } from '../storage/idb.ts';
import { enrollMessage, helloMessage } from '../../protocol/wire.ts';

/** The two key pairs as stored. */
export interface DeviceKeys {
  /** Ed25519, `sign`/`verify`. */
  identity: CryptoKeyPair;
  /** X25519, `deriveBits`. */
  hpke: CryptoKeyPair;
}

/** Where the device keys live between sessions. */
export interface KeyStore {
  /** The stored keys, or undefined when there are none (or they are unusable). */
  load(): Promise<DeviceKeys | undefined>;
  /**
   * Stores `keys` unless keys are already there, and returns the keys stored: two workers
   * that start at once end up with one identity.
   */
  saveIfAbsent(keys: DeviceKeys): Promise<DeviceKeys>;
}

/** What the rest of the worker needs from the device's keys. */
export interface DeviceIdentity {
  /** Ed25519 raw public key, base64url (43 characters). */
  identityKey: string;
  /** X25519 raw public key, base64url (43 characters). */
  hpkeKey: string;
  /** Ed25519 signature of `bytes` with the identity key (64 bytes). */
  sign(bytes: Uint8Array): Promise<Uint8Array>;
  /** The HPKE pair, for opening job payloads. */
  hpke: CryptoKeyPair;
}

/** Loads the device's keys from `store`, creating and storing them on first use. */
export async function loadOrCreateIdentity(store: KeyStore): Promise<DeviceIdentity> {
  let keys = await store.load();
  if (keys === undefined) {
    const identity = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    keys = await store.saveIfAbsent({ identity, hpke: await generateHpkeKeyPair(false) });
  }
  const { identity, hpke } = keys;
  return {
    identityKey: await exportPublicKey(identity.publicKey),
    hpkeKey: await exportPublicKey(hpke.publicKey),
    hpke,
    // Copied: WebCrypto's types take only ArrayBuffer-backed views, not SharedArrayBuffer ones.
    sign: async (bytes) => new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, new Uint8Array(bytes))),
  };
}

/** The `hello` fields that answer a challenge: both public keys, and the identity key's signature over {@link helloMessage}. */
export async function answerChallenge(
  identity: DeviceIdentity,
  nonce: string,
): Promise<{ identityKey: string; hpkeKey: string; nonce: string; signature: string }> {
  const { identityKey, hpkeKey } = identity;
  return { identityKey, hpkeKey, nonce, signature: toB64url(await identity.sign(helloMessage(nonce, identityKey, hpkeKey))) };
}

/** An enrollment with fleet token `token` (`POST /v1/enroll`), signed with the identity key: proves this device holds it. */
export async function signEnrollment(identity: DeviceIdentity, token: string): Promise<{ identityKey: string; signature: string }> {
  const signature = await identity.sign(enrollMessage(token, identity.identityKey));
  return { identityKey: identity.identityKey, signature: toB64url(signature) };
}

/** True when `value` holds both pairs with the expected algorithms and private keys that cannot be exported. */
export function isDeviceKeys(value: unknown): value is DeviceKeys {
  if (typeof value !== 'object' || value === null) return false;
  const { identity, hpke } = value as Partial<Record<keyof DeviceKeys, unknown>>;
  return isPair(identity, 'Ed25519') && isPair(hpke, 'X25519');
}

function isPair(value: unknown, algorithm: string): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { publicKey, privateKey } = value as Partial<Record<keyof CryptoKeyPair, unknown>>;
  return (
    publicKey instanceof CryptoKey &&
    privateKey instanceof CryptoKey &&
    publicKey.algorithm.name === algorithm &&
    privateKey.algorithm.name === algorithm &&
    !privateKey.extractable
  );
}

/** Keeps the keys in memory only: for tests and for browsers without IndexedDB (a new identity per session). */
export class MemoryKeyStore implements KeyStore {
  #keys: DeviceKeys | undefined;

  async load(): Promise<DeviceKeys | undefined> {
    return this.#keys;
  }

  async saveIfAbsent(keys: DeviceKeys): Promise<DeviceKeys> {
    this.#keys ??= keys;
    return this.#keys;
  }
}

const STORE = 'keys';
const RECORD = 'device';

/** Keeps the keys in IndexedDB (database `spinneret-device`, one record). */
export class IndexedDbKeyStore implements KeyStore {
  readonly #db: IdbStore;

  constructor(options: { indexedDB?: IDBFactory; databaseName?: string } = {}) {
    this.#db = new IdbStore({ ...options, databaseName: options.databaseName ?? 'spinneret-device', store: STORE });
  }

  async load(): Promise<DeviceKeys | undefined> {
    const value = await this.#db.get(RECORD, 'read the device keys');
    return isDeviceKeys(value) ? value : undefined;
  }

  saveIfAbsent(keys: DeviceKeys): Promise<DeviceKeys> {
    return this.#db.write('save the device keys', (store) => {
      let kept = keys;
      // Read and write in one transaction, so a second worker's keys cannot slip in between.
      const read = store.get(RECORD);
      read.onsuccess = () => {
        if (isDeviceKeys(read.result)) kept = read.result;
        else store.put(keys, RECORD);
      };
      return () => kept;
    });
  }
}
