/**
 * Settings of the operator's commands (`spinneret coordinator|gateway|modelhost`): one JSON
 * configuration file, then environment variables over it, then the defaults below. Every
 * setting is listed here once, with its environment variable, default and meaning; the table in
 * docs/operating.md is this list (a test keeps them equal). Each value is checked with valibot,
 * and a refusal names the field, where it came from and why.
 *
 * Keys are dotted paths into the file: `{"payouts": {"threshold": "1 TON"}}` sets
 * `payouts.threshold`. Durations are strings such as `"30s"`, `"10m"`, `"24h"`; amounts are
 * nanoTON digits (`"1000000000"`) or TON (`"1 TON"`, `"0.5 TON"`).
 */
import { readFileSync } from 'node:fs';
import { toNano } from '@ton/core';
import * as v from 'valibot';
import { LEVELS, type Level } from './log.ts';

/** A configuration the command refuses: each problem names the field, its source and the reason. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`The configuration is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** How an environment variable's text becomes a raw value. */
type Kind = 'string' | 'number' | 'list' | 'boolean';

interface Setting<S extends v.GenericSchema = v.GenericSchema> {
  readonly kind: Kind;
  readonly schema: S;
  /** Raw (file) form; undefined: unset unless given. */
  readonly default: v.InferInput<S> | undefined;
  /** Shown in the table instead of the default, when it depends on other settings. */
  readonly shownDefault?: string;
  readonly env?: string;
  readonly doc: string;
  /** A secret: never printed, and refused in the file on mainnet where noted. */
  readonly secret?: boolean;
}

type Settings = Record<string, Setting>;

const s = <S extends v.GenericSchema>(
  kind: Kind,
  schema: S,
  def: v.InferInput<S> | undefined,
  env: string | undefined,
  doc: string,
  extra: { shownDefault?: string; secret?: boolean } = {},
): Setting<S> => ({ kind, schema, default: def, doc, ...(env === undefined ? {} : { env }), ...extra });

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `"30s"` → 30 000 (ms). */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (match === null) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * UNITS[match[2] as keyof typeof UNITS];
}

const duration = v.pipe(
  v.string('expected a duration string such as "30s", "10m" or "24h"'),
  v.regex(/^\d{1,9}(ms|s|m|h|d)$/, 'expected a whole number followed by ms, s, m, h or d, such as "30s" or "24h"'),
  v.transform(parseDuration),
  v.minValue(1, 'a duration must be longer than 0'),
);
const nano = v.pipe(
  v.string('expected an amount string: nanoTON digits ("1000000000") or TON ("1 TON")'),
  v.regex(/^(\d{1,19}|\d{1,10}(\.\d{1,9})? TON)$/, 'expected nanoTON digits ("1000000000") or TON with up to 9 decimals ("1.5 TON")'),
  v.transform((text): bigint => (text.endsWith(' TON') ? toNano(text.slice(0, -4)) : BigInt(text))),
);
const port = v.pipe(
  v.number('expected a port number'),
  v.integer('expected a whole port number'),
  v.minValue(0, 'a port is 0 to 65535'),
  v.maxValue(65535, 'a port is 0 to 65535'),
);
const host = v.pipe(v.string('expected a host name or address'), v.minLength(1, 'the host is empty'));
const httpUrl = v.pipe(
  v.string('expected a URL'),
  v.url('expected a URL such as "https://example.org"'),
  v.regex(/^https?:\/\//, 'expected an http:// or https:// URL'),
);
const rate = v.pipe(v.number('expected a number from 0 to 1'), v.minValue(0, 'a rate is at least 0'), v.maxValue(1, 'a rate is at most 1'));
const count = (min: number, max: number) =>
  v.pipe(
    v.number('expected a whole number'),
    v.integer('expected a whole number'),
    v.minValue(min, `expected at least ${min}`),
    v.maxValue(max, `expected at most ${max}`),
  );
const text = (what: string, max = 4096) =>
  v.pipe(v.string(`expected ${what}`), v.minLength(1, `${what} is empty`), v.maxLength(max, `${what} is longer than ${max} characters`));
const level = v.picklist(LEVELS as Level[], `expected one of ${LEVELS.join(', ')}`);

export const COORDINATOR_SETTINGS = {
  network: s(
    'string',
    v.picklist(['local', 'testnet', 'mainnet'], 'expected local, testnet or mainnet'),
    'local',
    'SPINNERET_NETWORK',
    'What this deployment is. `mainnet` refuses unsafe settings (see below).',
  ),
  'listen.host': s('string', host, '127.0.0.1', 'SPINNERET_HOST', 'Address the HTTP and WebSocket server binds.'),
  'listen.port': s(
    'number',
    port,
    8787,
    'SPINNERET_COORDINATOR_PORT',
    'Port of `/v1`, `/v1/contributor`, `/metrics`, `/healthz`, `/readyz`.',
  ),
  appUrl: s(
    'string',
    httpUrl,
    undefined,
    'SPINNERET_APP_URL',
    'Public URL of the contributor page; its host is the domain wallet proofs must name. Required (https) on mainnet.',
  ),
  walletDomains: s(
    'list',
    v.array(text('a domain', 253), 'expected a list of hosts'),
    undefined,
    'SPINNERET_WALLET_DOMAINS',
    'More hosts (host or host:port) wallet proofs may name, comma-separated in the environment.',
    { shownDefault: '`127.0.0.1`, `localhost` on `local`; none otherwise' },
  ),
  'database.url': s(
    'string',
    text('a PostgreSQL URL'),
    undefined,
    'DATABASE_URL',
    'PostgreSQL (`postgres://user@host:5432/db`); unset: embedded PGlite in `database.dataDir`.',
    { secret: true },
  ),
  'database.schema': s(
    'string',
    v.pipe(v.string('expected a schema name'), v.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lowercase SQL name (letters, digits, _)')),
    undefined,
    'SPINNERET_DATABASE_SCHEMA',
    'PostgreSQL schema for the tables (created if missing); unset: the default search path.',
  ),
  'database.dataDir': s(
    'string',
    text('a folder'),
    '.spinneret/coordinator',
    'SPINNERET_DATA_DIR',
    'PGlite folder when no `database.url`.',
  ),
  manifestUrl: s(
    'string',
    httpUrl,
    'http://127.0.0.1:8090/manifest.json',
    'SPINNERET_MANIFEST_URL',
    "The model host's manifest: the models this network serves.",
  ),
  'jobs.lease': s('string', duration, '60s', 'SPINNERET_JOB_LEASE', 'How long a contributor has to finish a job.'),
  'jobs.heartbeat': s('string', duration, '15s', 'SPINNERET_HEARTBEAT', 'Workers ping this often; one silent twice as long is dropped.'),
  'jobs.maxAttempts': s('number', count(1, 10), 3, 'SPINNERET_JOB_ATTEMPTS', 'Attempts per job, re-assignments included.'),
  'jobs.maxQueued': s('number', count(1, 1_000_000), 10_000, 'SPINNERET_MAX_QUEUED', 'Most jobs waiting at once; more get 503.'),
  'cluster.nats': s(
    'string',
    v.pipe(
      v.string('expected a NATS URL'),
      v.regex(/^(nats|tls):\/\/[^\s]{1,250}$/, 'expected a nats:// or tls:// URL such as "nats://127.0.0.1:4222"'),
    ),
    undefined,
    'SPINNERET_NATS_URL',
    'NATS server of the replicas (docs/operating.md, "Replicas"); unset: one process, no NATS. Needs `database.url`.',
  ),
  'cluster.replicaId': s(
    'string',
    v.pipe(v.string('expected a replica id'), v.regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'expected 1 to 32 lowercase letters, digits or -')),
    undefined,
    'SPINNERET_REPLICA_ID',
    "This replica's id, unique among live replicas (its jobs are its own); unset: host name and process id.",
  ),
  drainTimeout: s(
    'string',
    duration,
    '30s',
    'SPINNERET_DRAIN_TIMEOUT',
    'On SIGTERM: how long running jobs may finish before the rest fail.',
  ),
  'verification.canaryRate': s('number', rate, 0.05, 'SPINNERET_CANARY_RATE', 'Share of job slots that also carry a known-answer job.'),
  'verification.replicationRate': s('number', rate, 0.1, 'SPINNERET_REPLICATION_RATE', 'Replication rate of a new contributor record.'),
  'verification.minReplicationRate': s('number', rate, 0.01, 'SPINNERET_MIN_REPLICATION_RATE', 'The floor a clean record decays toward.'),
  'verification.quarantineAfter': s(
    'number',
    count(1, 1000),
    3,
    'SPINNERET_QUARANTINE_AFTER',
    'Failed checks in a day that quarantine a device for a day.',
  ),
  'verification.verdictWindow': s(
    'string',
    duration,
    '10m',
    'SPINNERET_VERDICT_WINDOW',
    "How long a replicated job waits for its replica and the requester's verdict.",
  ),
  'verification.probationCreditCap': s(
    'string',
    nano,
    '1 TON',
    'SPINNERET_PROBATION_CREDIT_CAP',
    "Most unchecked credit of a new device's requester jobs that settles before it passes its probation checks; the rest waits.",
  ),
  'verification.canaryDelay': s(
    'string',
    duration,
    '5m',
    'SPINNERET_CANARY_DELAY',
    'Canaries go out at a random moment up to this long after the job that drew them.',
  ),
  'payouts.verificationWindow': s(
    'string',
    duration,
    '24h',
    'SPINNERET_VERIFICATION_WINDOW',
    'How long a credit stays pending (voidable by failed checks) before it settles.',
  ),
  'payouts.threshold': s('string', nano, '1 TON', 'SPINNERET_PAYOUT_THRESHOLD', 'Smallest settled balance paid out.'),
  'payouts.interval': s('string', duration, '1h', 'SPINNERET_PAYOUT_INTERVAL', 'How often settled balances are paid.'),
  'payouts.settleInterval': s('string', duration, '1m', 'SPINNERET_SETTLE_INTERVAL', 'How often credits past the window are settled.'),
  'deposits.address': s(
    'string',
    text('a TON address', 100),
    undefined,
    'SPINNERET_DEPOSIT_ADDRESS',
    "Where requesters send TON; unset: the hot wallet's address.",
  ),
  'deposits.interval': s('string', duration, '10s', 'SPINNERET_DEPOSIT_INTERVAL', 'How often the deposit address is read.'),
  'deposits.budgetMemo': s(
    'string',
    text('a memo', 120),
    'spinneret:check-budget',
    'SPINNERET_BUDGET_MEMO',
    "The transfer comment that funds the network's check budget.",
  ),
  'deposits.checkBudgetLimit': s(
    'string',
    nano,
    '10 TON',
    'SPINNERET_CHECK_BUDGET_LIMIT',
    'Most the check budget may have reserved for checks in flight.',
  ),
  'ton.chain': s(
    'string',
    v.picklist(['sandbox', 'toncenter'], 'expected sandbox or toncenter'),
    undefined,
    'SPINNERET_TON_CHAIN',
    'Where payouts and deposits happen: `sandbox` (an emulated chain in this process, with a faucet) or `toncenter` (the real TON `network`).',
    { shownDefault: '`sandbox` on `local`, `toncenter` otherwise' },
  ),
  'ton.endpoint': s(
    'string',
    httpUrl,
    undefined,
    'SPINNERET_TON_ENDPOINT',
    "toncenter JSON-RPC URL; unset: toncenter's URL for `network`.",
    {
      shownDefault: "toncenter's for `network`",
    },
  ),
  'ton.apiKey': s('string', text('an API key', 256), undefined, 'SPINNERET_TON_API_KEY', 'toncenter API key.', { secret: true }),
  'hotWallet.mnemonicFile': s(
    'string',
    text('a file path'),
    undefined,
    'SPINNERET_HOT_WALLET_MNEMONIC_FILE',
    "File holding the hot wallet's 24 words (mode 0600). Required off the sandbox chain, or the next setting.",
  ),
  'hotWallet.mnemonic': s(
    'string',
    text('24 words', 1024),
    undefined,
    'SPINNERET_HOT_WALLET_MNEMONIC',
    "The hot wallet's 24 words. Environment only on mainnet: refused in the file.",
    { secret: true },
  ),
  operatorToken: s(
    'string',
    v.pipe(v.string('expected a token'), v.minLength(16, 'the operator token needs 16 characters or more')),
    undefined,
    'SPINNERET_OPERATOR_TOKEN',
    'Bearer token of the operator routes (unmatched deposits, books); unset: not served.',
    { secret: true },
  ),
  'log.level': s('string', level, 'info', 'SPINNERET_LOG_LEVEL', 'Least level logged.'),
  'local.keysFile': s(
    'string',
    text('a file path'),
    undefined,
    'SPINNERET_LOCAL_KEYS_FILE',
    'Sandbox chain only (`npm start`): keeps API keys for a local gateway and demo requester in this file (mode 0600), funded from the faucet.',
  ),
  'local.fund': s('string', nano, '100 TON', undefined, 'What the faucet gives each local key and the check budget.'),
} satisfies Settings;

export const GATEWAY_SETTINGS = {
  'listen.host': s(
    'string',
    host,
    '127.0.0.1',
    'SPINNERET_HOST',
    'Address the gateway binds. It sees plaintext: keep it on loopback or a private network.',
  ),
  'listen.port': s('number', port, 8788, 'SPINNERET_GATEWAY_PORT', 'Port of the OpenAI-compatible `/v1`.'),
  coordinatorUrl: s(
    'string',
    httpUrl,
    'http://127.0.0.1:8787',
    'SPINNERET_COORDINATOR_URL',
    'The coordinator the gateway sends sealed jobs to.',
  ),
  apiKey: s(
    'string',
    text('an API key', 256),
    undefined,
    'SPINNERET_GATEWAY_API_KEY',
    "The gateway's requester API key (`spinneret coordinator --create-key`).",
    {
      secret: true,
    },
  ),
  apiKeyFile: s(
    'string',
    text('a file path'),
    undefined,
    'SPINNERET_GATEWAY_API_KEY_FILE',
    'File holding the API key, or a local keys file (`local.keysFile`). One of the two is required.',
  ),
  'log.level': s('string', level, 'info', 'SPINNERET_LOG_LEVEL', 'Least level logged.'),
} satisfies Settings;

export const MODELHOST_SETTINGS = {
  'listen.host': s('string', host, '127.0.0.1', 'SPINNERET_HOST', 'Address the model host binds.'),
  'listen.port': s('number', port, 8090, 'SPINNERET_MODELHOST_PORT', 'Port of `/manifest.json` and the model files.'),
  corrupt: s(
    'list',
    v.array(text('a model/file path', 300), 'expected a list of model/file paths'),
    [],
    undefined,
    'Testing aid: files (`<model>/<file>`) served with one byte flipped.',
  ),
  'log.level': s('string', level, 'info', 'SPINNERET_LOG_LEVEL', 'Least level logged.'),
} satisfies Settings;

type Output<S extends Settings> = {
  -readonly [K in keyof S]: S[K]['default'] extends undefined ? v.InferOutput<S[K]['schema']> | undefined : v.InferOutput<S[K]['schema']>;
};

export type CoordinatorConfig = Output<typeof COORDINATOR_SETTINGS> & { readonly sources: Sources };
export type GatewayConfig = Output<typeof GATEWAY_SETTINGS> & { readonly sources: Sources };
export type ModelHostConfig = Output<typeof MODELHOST_SETTINGS> & { readonly sources: Sources };

/** Where each setting's value came from. */
export type Sources = Readonly<Record<string, 'default' | 'file' | 'env'>>;

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
