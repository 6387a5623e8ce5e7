import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { mnemonicNew, mnemonicToPrivateKey } from '@ton/crypto';
import { WalletContractV5R1 } from '@ton/ton';
import { HotWalletConfigError } from './errors.ts';
import { loadHotWallet, MNEMONIC_ENV, MNEMONIC_FILE_ENV } from './hot-wallet.ts';

describe('loadHotWallet', () => {
  it('builds the V5R1 wallet of the mnemonic in the env, and never shows the key', async () => {
    const words = await mnemonicNew();
    const wallet = await loadHotWallet({ env: { [MNEMONIC_ENV]: words.join(' ') } });
    const keys = await mnemonicToPrivateKey(words);
    const reference = WalletContractV5R1.create({ workchain: 0, publicKey: keys.publicKey });
    expect(wallet.address.equals(reference.address)).toBe(true);
    const shown = inspect(wallet, { depth: 5 }) + JSON.stringify(wallet);
    expect(shown).not.toContain(keys.secretKey.toString('hex').slice(0, 16));
    expect(shown).not.toContain(words[0]);
  });

  it('reads the mnemonic from a secret file', async () => {
    const words = await mnemonicNew();
    const fromEnv = await loadHotWallet({ env: { [MNEMONIC_ENV]: words.join(' ') } });
    const fromFile = await loadHotWallet({
      env: { [MNEMONIC_FILE_ENV]: '/run/secrets/hot' },
      readText: async (path) => (path === '/run/secrets/hot' ? `${words.join('\n')}\n` : ''),
    });
    expect(fromFile.address.equals(fromEnv.address)).toBe(true);
  });

  it('refuses a missing or invalid mnemonic without echoing it', async () => {
    await expect(loadHotWallet({ env: {} })).rejects.toBeInstanceOf(HotWalletConfigError);
    const bad = 'zebra '.repeat(24).trim();
    const err = await loadHotWallet({ env: { [MNEMONIC_ENV]: bad } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HotWalletConfigError);
    expect(String(err)).not.toContain('zebra');
  });
});
