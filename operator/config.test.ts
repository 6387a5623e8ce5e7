import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  COORDINATOR_SETTINGS,
  GATEWAY_SETTINGS,
  loadCoordinatorConfig,
  loadGatewayConfig,
  MODELHOST_SETTINGS,
  parseDuration,
  settingsTable,
} from './config.ts';

const problems = (fn: () => unknown): readonly string[] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the configuration was accepted');
};

/** A mainnet configuration an operator would run: every refusal below starts from it. */
const SAFE_MAINNET = {
  network: 'mainnet',
  appUrl: 'https://app.spinneret.example',
  database: { url: 'postgres://spinneret@db.internal:5432/spinneret' },
  manifestUrl: 'https://models.spinneret.example/manifest.json',
  hotWallet: { mnemonicFile: '/run/secrets/hot-wallet' },
};
const mainnet = (patch: Record<string, unknown>, env: Record<string, string> = {}) =>
  loadCoordinatorConfig({ fileText: JSON.stringify({ ...SAFE_MAINNET, ...patch }), env });

describe('configuration', () => {
  it('gives production defaults with no file: hours of verification window, hourly payouts from 1 TON', () => {
    const config = loadCoordinatorConfig({ env: {} });
    expect(config['payouts.verificationWindow']).toBe(24 * 3_600_000);
    expect(config['payouts.interval']).toBe(3_600_000);
    expect(config['payouts.threshold']).toBe(1_000_000_000n);
    expect(config['ton.chain']).toBe('sandbox');
    expect(config['listen.port']).toBe(8787);
    expect(config.sources['listen.port']).toBe('default');
  });

  it('reads the file, then the environment over it', () => {
    const config = loadCoordinatorConfig({
      fileText: JSON.stringify({ listen: { port: 9000 }, payouts: { threshold: '0.5 TON', interval: '6h' } }),
      env: { SPINNERET_COORDINATOR_PORT: '9100', SPINNERET_WALLET_DOMAINS: 'a.example, b.example:8443' },
    });
    expect(config['listen.port']).toBe(9100);
    expect(config.sources['listen.port']).toBe('env');
    expect(config['payouts.threshold']).toBe(500_000_000n);
    expect(config['payouts.interval']).toBe(6 * 3_600_000);
    expect(config.sources['payouts.interval']).toBe('file');
    expect(config.walletDomains).toEqual(['a.example', 'b.example:8443']);
  });

  it('refuses a bad file naming each field, where it came from and why', () => {
    const found = problems(() =>
      loadCoordinatorConfig({
        file: 'bad.json',
        fileText: JSON.stringify({ listen: { port: 70000 }, payouts: { interval: 30 }, verification: { canaryRate: 2 }, colour: 'red' }),
        env: { SPINNERET_PAYOUT_THRESHOLD: 'lots' },
      }),
    );
    expect(found).toEqual([
      'colour (in bad.json): unknown setting; see docs/operating.md for the list',
      'listen.port (from bad.json): a port is 0 to 65535, got 70000',
      'verification.canaryRate (from bad.json): a rate is at most 1, got 2',
      'payouts.threshold (from environment SPINNERET_PAYOUT_THRESHOLD): expected nanoTON digits ("1000000000") or TON with up to 9 decimals ("1.5 TON"), got "lots"',
      'payouts.interval (from bad.json): expected a duration string such as "30s", "10m" or "24h", got 30',
    ]);
    expect(problems(() => loadCoordinatorConfig({ file: 'x.json', fileText: '{"network": ' }))[0]).toMatch(/^x\.json: not JSON/);
    expect(problems(() => loadCoordinatorConfig({ file: 'x.json', fileText: '[1]' }))).toEqual([
      'x.json: expected a JSON object of settings',
    ]);
  });

  it('takes replica settings from the file or the environment, and refuses replicas without PostgreSQL', () => {
    const replica = loadCoordinatorConfig({
      fileText: JSON.stringify({ database: { url: 'postgres://db/spinneret' }, cluster: { nats: 'nats://10.0.0.5:4222' } }),
      env: { SPINNERET_REPLICA_ID: 'coordinator-2' },
    });
    expect(replica['cluster.nats']).toBe('nats://10.0.0.5:4222');
    expect(replica['cluster.replicaId']).toBe('coordinator-2');
    expect(loadCoordinatorConfig({ env: {} })['cluster.nats']).toBeUndefined();
    expect(problems(() => loadCoordinatorConfig({ env: { SPINNERET_NATS_URL: 'nats://127.0.0.1:4222' } }))).toEqual([
      'cluster.nats: replicas share one PostgreSQL database; set database.url (PGlite is one process only)',
    ]);
    expect(
      problems(() =>
        loadCoordinatorConfig({ file: 'r.json', fileText: JSON.stringify({ cluster: { nats: 'http://x', replicaId: 'Not OK!' } }) }),
      ),
    ).toEqual([
      'cluster.nats (from r.json): expected a nats:// or tls:// URL such as "nats://127.0.0.1:4222", got "http://x"',
      'cluster.replicaId (from r.json): expected 1 to 32 lowercase letters, digits or -, got "Not OK!"',
    ]);
  });

  it('never prints a secret it refuses', () => {
    const found = problems(() => loadCoordinatorConfig({ fileText: '{}', env: { SPINNERET_OPERATOR_TOKEN: 'short-secret' } }));
    expect(found).toEqual([
      'operatorToken (from environment SPINNERET_OPERATOR_TOKEN): the operator token needs 16 characters or more, got [secret]',
    ]);
  });

  it('accepts a safe mainnet configuration', () => {
    const config = mainnet({});
    expect(config['ton.chain']).toBe('toncenter');
    expect(config.walletDomains).toBeUndefined();
  });

  it('refuses mainnet with demo timings', () => {
    expect(problems(() => mainnet({ payouts: { verificationWindow: '30s', interval: '30s', threshold: '1000000' } }))).toEqual([
      'payouts.verificationWindow: refused on mainnet: demo timing: under 1h, failed checks could not void credits before they are paid',
      'payouts.interval: refused on mainnet: demo timing: under 10m, chain fees would eat the payouts',
      'payouts.threshold: refused on mainnet: demo amount: under 0.1 TON, chain fees would eat the payouts',
    ]);
    expect(problems(() => mainnet({ verification: { verdictWindow: '25s' } }))).toEqual([
      'verification.verdictWindow: refused on mainnet: demo timing: under 1m, replicas could not answer',
    ]);
  });

  it('refuses mainnet on the sandbox chain or a testnet endpoint', () => {
    expect(problems(() => mainnet({ ton: { chain: 'sandbox' } }))).toEqual([
      'ton.chain: refused on mainnet: the sandbox chain is emulated; contributors would be paid nothing real. Use toncenter',
    ]);
    expect(problems(() => mainnet({}, { SPINNERET_TON_ENDPOINT: 'https://testnet.toncenter.com/api/v2/jsonRPC' }))).toEqual([
      'ton.endpoint: refused on mainnet: https://testnet.toncenter.com/api/v2/jsonRPC is not an https mainnet endpoint',
    ]);
  });

  it('refuses mainnet without a public https URL for wallet proofs, or with loopback proof domains', () => {
    const { appUrl: _dropped, ...noApp } = SAFE_MAINNET;
    expect(problems(() => loadCoordinatorConfig({ fileText: JSON.stringify(noApp), env: {} }))).toEqual([
      'appUrl: refused on mainnet: wallet proofs need the public https URL of the contributor page (SPINNERET_APP_URL)',
    ]);
    expect(problems(() => mainnet({ appUrl: 'http://app.spinneret.example' }))[0]).toMatch(/^appUrl: refused on mainnet/);
    expect(problems(() => mainnet({ walletDomains: ['localhost'] }))).toEqual([
      'walletDomains: refused on mainnet: localhost is a loopback host; anyone could prove a wallet for it',
    ]);
  });

  it('refuses the hot wallet words in the file on mainnet, and takes them from the environment', () => {
    const words = Array.from({ length: 24 }, () => 'abandon').join(' ');
    expect(problems(() => mainnet({ hotWallet: { mnemonic: words } }))).toEqual([
      'hotWallet.mnemonic: refused on mainnet: the hot wallet words are in the configuration file; use hotWallet.mnemonicFile or the environment',
    ]);
    const { hotWallet: _file, ...noWallet } = SAFE_MAINNET;
    expect(
      loadCoordinatorConfig({ fileText: JSON.stringify(noWallet), env: { SPINNERET_HOT_WALLET_MNEMONIC: words } })['hotWallet.mnemonic'],
    ).toBe(words);
    expect(problems(() => loadCoordinatorConfig({ fileText: JSON.stringify(noWallet), env: {} }))[0]).toMatch(
      /^hotWallet\.mnemonicFile: required/,
    );
  });

  it('keeps faucet keys and toncenter apart from the local network', () => {
    expect(problems(() => loadCoordinatorConfig({ fileText: JSON.stringify({ ton: { chain: 'toncenter' } }), env: {} }))[0]).toMatch(
      /^ton\.chain: toncenter needs network testnet or mainnet/,
    );
    expect(problems(() => mainnet({ local: { keysFile: '/tmp/keys.json' } }))).toContain(
      'local.keysFile: only on the sandbox chain (its keys are funded from the faucet)',
    );
  });

  it('asks the gateway for its API key', () => {
    expect(problems(() => loadGatewayConfig({ env: {} }))[0]).toMatch(/^apiKey: required/);
    expect(loadGatewayConfig({ env: { SPINNERET_GATEWAY_API_KEY: 'sk-test' } }).apiKey).toBe('sk-test');
  });

  it('reads durations', () => {
    expect([parseDuration('500ms'), parseDuration('30s'), parseDuration('10m'), parseDuration('24h'), parseDuration('2d')]).toEqual([
      500, 30_000, 600_000, 86_400_000, 172_800_000,
    ]);
  });

  it('documents every setting with its default in docs/operating.md', () => {
    const doc = readFileSync('docs/operating.md', 'utf8');
    for (const settings of [COORDINATOR_SETTINGS, GATEWAY_SETTINGS, MODELHOST_SETTINGS]) expect(doc).toContain(settingsTable(settings));
  });
});
