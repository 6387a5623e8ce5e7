import { describe, expect, it } from 'vitest';
import { fromB64url } from '../../protocol/envelope.ts';
import { isDeviceKeys, loadOrCreateIdentity, MemoryKeyStore, type DeviceKeys, type KeyStore } from './identity.ts';

describe('loadOrCreateIdentity', () => {
  it('makes non-extractable Ed25519 and X25519 keys whose signatures verify', async () => {
    const store = new MemoryKeyStore();
    const identity = await loadOrCreateIdentity(store);
    expect(identity.identityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(identity.hpkeKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(identity.hpke.privateKey.extractable).toBe(false);
    const stored = await store.load();
    expect(stored?.identity.privateKey.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('pkcs8', identity.hpke.privateKey)).rejects.toThrow();

    const message = new TextEncoder().encode('spinneret');
    const signature = await identity.sign(message);
    const publicKey = await crypto.subtle.importKey('raw', new Uint8Array(fromB64url(identity.identityKey)), { name: 'Ed25519' }, false, [
      'verify',
    ]);
    expect(await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, new Uint8Array(signature), message)).toBe(true);
    expect(await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, new Uint8Array(signature), new TextEncoder().encode('other'))).toBe(
      false,
    );
  });

  it('loads the same keys the next time', async () => {
    const store = new MemoryKeyStore();
    const first = await loadOrCreateIdentity(store);
    const second = await loadOrCreateIdentity(store);
    expect(second.identityKey).toBe(first.identityKey);
    expect(second.hpkeKey).toBe(first.hpkeKey);
    expect(second.hpke).toBe(first.hpke);
  });

  it('ends with one identity when two workers start at once', async () => {
    const store = new MemoryKeyStore();
    const [a, b] = await Promise.all([loadOrCreateIdentity(store), loadOrCreateIdentity(store)]);
    expect(a.identityKey).toBe(b.identityKey);
    expect(a.hpkeKey).toBe(b.hpkeKey);
  });

  it('uses the keys another worker saved first, not its own', async () => {
    const other = new MemoryKeyStore();
    const first = await loadOrCreateIdentity(other);
    const kept = await other.load();
    const racing: KeyStore = { load: async () => undefined, saveIfAbsent: async () => kept as DeviceKeys };
    const identity = await loadOrCreateIdentity(racing);
    expect(identity.identityKey).toBe(first.identityKey);
    expect(identity.hpke).toBe(kept?.hpke);
  });
});

describe('isDeviceKeys', () => {
  it('accepts only non-extractable pairs of the right algorithms', async () => {
    const ed = (extractable: boolean) => crypto.subtle.generateKey({ name: 'Ed25519' }, extractable, ['sign', 'verify']);
    const x = (extractable: boolean) => crypto.subtle.generateKey({ name: 'X25519' }, extractable, ['deriveBits']);
    expect(isDeviceKeys({ identity: await ed(false), hpke: await x(false) })).toBe(true);
    expect(isDeviceKeys({ identity: await ed(true), hpke: await x(false) })).toBe(false);
    expect(isDeviceKeys({ identity: await x(false), hpke: await x(false) })).toBe(false);
    expect(isDeviceKeys({ identity: await ed(false) })).toBe(false);
    expect(isDeviceKeys(null)).toBe(false);
  });
});
