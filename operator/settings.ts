/**
 * The operator's settings, their building blocks (durations, amounts, ports, URLs) and the
 * gateway's and model host's lists; the coordinator's list is in coordinator-settings.ts.
 * How they are loaded is operator/config.ts.
 */
import { toNano } from '@ton/core';
import * as v from 'valibot';
import { LEVELS, type Level } from './log.ts';

/** How an environment variable's text becomes a raw value. */
export type Kind = 'string' | 'number' | 'list' | 'boolean';

export interface Setting<S extends v.GenericSchema = v.GenericSchema> {
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

export type Settings = Record<string, Setting>;

export const s = <S extends v.GenericSchema>(
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

export const duration = v.pipe(
  v.string('expected a duration string such as "30s", "10m" or "24h"'),
  v.regex(/^\d{1,9}(ms|s|m|h|d)$/, 'expected a whole number followed by ms, s, m, h or d, such as "30s" or "24h"'),
  v.transform(parseDuration),
  v.minValue(1, 'a duration must be longer than 0'),
);
export const nano = v.pipe(
  v.string('expected an amount string: nanoTON digits ("1000000000") or TON ("1 TON")'),
  v.regex(/^(\d{1,19}|\d{1,10}(\.\d{1,9})? TON)$/, 'expected nanoTON digits ("1000000000") or TON with up to 9 decimals ("1.5 TON")'),
  v.transform((text): bigint => (text.endsWith(' TON') ? toNano(text.slice(0, -4)) : BigInt(text))),
);
export const port = v.pipe(
  v.number('expected a port number'),
  v.integer('expected a whole port number'),
  v.minValue(0, 'a port is 0 to 65535'),
  v.maxValue(65535, 'a port is 0 to 65535'),
);
export const host = v.pipe(v.string('expected a host name or address'), v.minLength(1, 'the host is empty'));
export const httpUrl = v.pipe(
  v.string('expected a URL'),
  v.url('expected a URL such as "https://example.org"'),
  v.regex(/^https?:\/\//, 'expected an http:// or https:// URL'),
);
export const rate = v.pipe(
  v.number('expected a number from 0 to 1'),
  v.minValue(0, 'a rate is at least 0'),
  v.maxValue(1, 'a rate is at most 1'),
);
export const count = (min: number, max: number) =>
  v.pipe(
    v.number('expected a whole number'),
    v.integer('expected a whole number'),
    v.minValue(min, `expected at least ${min}`),
    v.maxValue(max, `expected at most ${max}`),
  );
export const text = (what: string, max = 4096) =>
  v.pipe(v.string(`expected ${what}`), v.minLength(1, `${what} is empty`), v.maxLength(max, `${what} is longer than ${max} characters`));
export const level = v.picklist(LEVELS as Level[], `expected one of ${LEVELS.join(', ')}`);

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
  channel: s(
    'boolean',
    v.boolean('expected true or false'),
    true,
    'SPINNERET_GATEWAY_CHANNEL',
    "Run jobs over the coordinator's requester channel (one WebSocket, `/v1/requester`); HTTP when it has none or it cannot open. `false`: HTTP only.",
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

export type Output<S extends Settings> = {
  -readonly [K in keyof S]: S[K]['default'] extends undefined ? v.InferOutput<S[K]['schema']> | undefined : v.InferOutput<S[K]['schema']>;
};

export type GatewayConfig = Output<typeof GATEWAY_SETTINGS> & { readonly sources: Sources };
export type ModelHostConfig = Output<typeof MODELHOST_SETTINGS> & { readonly sources: Sources };

/** Where each setting's value came from. */
export type Sources = Readonly<Record<string, 'default' | 'file' | 'env'>>;
