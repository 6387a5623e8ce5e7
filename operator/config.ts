/**
 * Settings of the operator's commands (`spinneret coordinator|gateway|modelhost`): one JSON
 * configuration file, then environment variables over it, then the defaults. Every setting
 * is listed once, with its environment variable, default and meaning, in operator/settings.ts
 * (gateway, model host) and operator/coordinator-settings.ts; the table in docs/operating.md
 * is this list (a test keeps them equal). Each value is checked with valibot,
 * and a refusal names the field, where it came from and why.
 *
 * Keys are dotted paths into the file: `{"payouts": {"threshold": "1 TON"}}` sets
 * `payouts.threshold`. Durations are strings such as `"30s"`, `"10m"`, `"24h"`; amounts are
 * nanoTON digits (`"1000000000"`) or TON (`"1 TON"`, `"0.5 TON"`).
 */
import { readFileSync } from 'node:fs';
import { toNano } from '@ton/core';
import * as v from 'valibot';
import { COORDINATOR_SETTINGS, type CoordinatorConfig } from './coordinator-settings.ts';
import {
  GATEWAY_SETTINGS,
  type GatewayConfig,
  type Kind,
  MODELHOST_SETTINGS,
  type ModelHostConfig,
  type Output,
  type Settings,
  type Sources,
} from './settings.ts';

export { COORDINATOR_SETTINGS, type CoordinatorConfig } from './coordinator-settings.ts';
export { GATEWAY_SETTINGS, type GatewayConfig, MODELHOST_SETTINGS, type ModelHostConfig, parseDuration, type Sources } from './settings.ts';

/** A configuration the command refuses: each problem names the field, its source and the reason. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`The configuration is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** The configuration file (JSON); none: environment and defaults only. */
  file?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  /** Read instead of the file (tests). */
  fileText?: string;
}

/** Flattens `{"a": {"b": 1}}` into `{"a.b": 1}`; lists and scalars are leaves. */
function flatten(value: Record<string, unknown>, prefix: string, out: Map<string, unknown>): void {
  for (const [key, inner] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) flatten(inner as Record<string, unknown>, path, out);
    else out.set(path, inner);
  }
}

function fromEnv(kind: Kind, text: string): unknown {
  switch (kind) {
    case 'string':
      return text;
    case 'number':
      return text.trim() === '' || Number.isNaN(Number(text)) ? text : Number(text);
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text;
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
  }
}

function resolve<S extends Settings>(settings: S, options: LoadOptions): Output<S> & { sources: Sources } {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const raw = new Map<string, unknown>();
  const where = options.file ?? 'the configuration file';
  if (options.file !== undefined || options.fileText !== undefined) {
    let textValue: string;
    try {
      textValue = options.fileText ?? readFileSync(options.file ?? '', 'utf8');
    } catch (err) {
      throw new ConfigError([`${where}: cannot be read (${err instanceof Error ? err.message : String(err)})`]);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(textValue);
    } catch (err) {
      throw new ConfigError([`${where}: not JSON (${err instanceof Error ? err.message : String(err)})`]);
    }
    const shape = v.safeParse(
      v.custom<Record<string, unknown>>(
        (x) => x !== null && typeof x === 'object' && !Array.isArray(x),
        'expected a JSON object of settings',
      ),
      parsed,
    );
    if (!shape.success) throw new ConfigError([`${where}: ${shape.issues[0].message}`]);
    flatten(shape.output, '', raw);
  }
  const sources: Record<string, 'default' | 'file' | 'env'> = {};
  for (const key of raw.keys()) {
    if (!(key in settings)) problems.push(`${key} (in ${where}): unknown setting; see docs/operating.md for the list`);
    else sources[key] = 'file';
  }
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    let value: unknown = raw.get(key);
    // An empty variable (`DATABASE_URL=`) counts as unset.
    const envText = setting.env === undefined || env[setting.env] === '' ? undefined : env[setting.env];
    if (envText !== undefined && setting.env !== undefined) {
      value = fromEnv(setting.kind, envText);
      sources[key] = 'env';
    }
    if (value === undefined) {
      value = setting.default;
      sources[key] = 'default';
    }
    if (value === undefined) continue;
    const result = v.safeParse(setting.schema, value);
    if (result.success) out[key] = result.output;
    else {
      const from = sources[key] === 'env' ? `environment ${setting.env ?? ''}` : sources[key] === 'file' ? where : 'default';
      problems.push(
        `${key} (from ${from}): ${result.issues[0].message}, got ${setting.secret === true ? '[secret]' : JSON.stringify(value)}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...(out as Output<S>), sources };
}

const DEMO = { verificationWindow: 3_600_000, payoutInterval: 600_000, verdictWindow: 60_000, threshold: toNano('0.1') };

/**
 * Reads and checks the coordinator's settings. On `mainnet` it refuses what would lose or leak
 * money: demo timings, the sandbox chain, no public URL for wallet proofs, loopback wallet
 * domains, the hot wallet's words in the file, local faucet keys.
 */
export function loadCoordinatorConfig(options: LoadOptions = {}): CoordinatorConfig {
  const config = resolve(COORDINATOR_SETTINGS, options);
  const problems: string[] = [];
  const chain = config['ton.chain'] ?? (config.network === 'local' ? 'sandbox' : 'toncenter');
  config['ton.chain'] = chain;
  if (config.network === 'local' && chain === 'toncenter') {
    problems.push('ton.chain: toncenter needs network testnet or mainnet (which TON network would it pay on?)');
  }
  if (chain === 'toncenter' && config['hotWallet.mnemonic'] === undefined && config['hotWallet.mnemonicFile'] === undefined) {
    problems.push('hotWallet.mnemonicFile: required off the sandbox chain (or SPINNERET_HOT_WALLET_MNEMONIC): payouts are signed with it');
  }
  if (config['local.keysFile'] !== undefined && chain !== 'sandbox') {
    problems.push('local.keysFile: only on the sandbox chain (its keys are funded from the faucet)');
  }
  if (config['cluster.nats'] !== undefined && config['database.url'] === undefined) {
    problems.push('cluster.nats: replicas share one PostgreSQL database; set database.url (PGlite is one process only)');
  }
  if (config.network === 'mainnet') {
    const unsafe = (key: string, reason: string): void => void problems.push(`${key}: refused on mainnet: ${reason}`);
    if (chain === 'sandbox') unsafe('ton.chain', 'the sandbox chain is emulated; contributors would be paid nothing real. Use toncenter');
    const endpoint = config['ton.endpoint'];
    if (endpoint !== undefined && (!endpoint.startsWith('https://') || endpoint.includes('testnet'))) {
      unsafe('ton.endpoint', `${endpoint} is not an https mainnet endpoint`);
    }
    if (config['payouts.verificationWindow'] < DEMO.verificationWindow) {
      unsafe('payouts.verificationWindow', 'demo timing: under 1h, failed checks could not void credits before they are paid');
    }
    if (config['payouts.interval'] < DEMO.payoutInterval)
      unsafe('payouts.interval', 'demo timing: under 10m, chain fees would eat the payouts');
    if (config['payouts.threshold'] < DEMO.threshold)
      unsafe('payouts.threshold', 'demo amount: under 0.1 TON, chain fees would eat the payouts');
    if (config['verification.verdictWindow'] < DEMO.verdictWindow)
      unsafe('verification.verdictWindow', 'demo timing: under 1m, replicas could not answer');
    const appUrl = config.appUrl;
    if (appUrl === undefined || !appUrl.startsWith('https://')) {
      unsafe('appUrl', 'wallet proofs need the public https URL of the contributor page (SPINNERET_APP_URL)');
    }
    for (const domain of config.walletDomains ?? []) {
      if (/^(localhost|127\.|\[?::1\]?)/.test(domain))
        unsafe('walletDomains', `${domain} is a loopback host; anyone could prove a wallet for it`);
    }
    if (config.sources['hotWallet.mnemonic'] === 'file') {
      unsafe('hotWallet.mnemonic', 'the hot wallet words are in the configuration file; use hotWallet.mnemonicFile or the environment');
    }
    if (config['local.keysFile'] !== undefined) unsafe('local.keysFile', 'local faucet keys');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

export function loadGatewayConfig(options: LoadOptions = {}): GatewayConfig {
  const config = resolve(GATEWAY_SETTINGS, options);
  if (config.apiKey === undefined && config.apiKeyFile === undefined) {
    throw new ConfigError([
      'apiKey: required (or apiKeyFile, SPINNERET_GATEWAY_API_KEY, SPINNERET_GATEWAY_API_KEY_FILE): the gateway pays for jobs with it',
    ]);
  }
  return config;
}

export function loadModelHostConfig(options: LoadOptions = {}): ModelHostConfig {
  return resolve(MODELHOST_SETTINGS, options);
}

/** The table of docs/operating.md for one command's settings. */
export function settingsTable(settings: Settings): string {
  const rows = Object.entries(settings).map(([key, setting]) => {
    const def = setting.shownDefault ?? (setting.default === undefined ? '—' : `\`${JSON.stringify(setting.default)}\``);
    return `| \`${key}\` | ${setting.env === undefined ? '—' : `\`${setting.env}\``} | ${def} | ${setting.doc} |`;
  });
  return ['| setting | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
