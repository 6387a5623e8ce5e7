/**
 * `spinneret coordinator|gateway|modelhost [--config FILE] [--help]`: the operator's commands.
 * Each reads one JSON configuration file (optional) with environment variables over it
 * (operator/config.ts, docs/operating.md), logs JSON lines (pino) on stdout, and on SIGTERM or
 * SIGINT stops taking work, lets what runs finish, and exits 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Logger as Pino } from 'pino';
import {
  ConfigError,
  COORDINATOR_SETTINGS,
  GATEWAY_SETTINGS,
  loadCoordinatorConfig,
  loadGatewayConfig,
  loadModelHostConfig,
  MODELHOST_SETTINGS,
} from './config.ts';
import { keysCommand, KEYS_USAGE } from './keys.ts';
import { quarantinesCommand, QUARANTINES_USAGE } from './quarantines.ts';
import { createLog } from './log.ts';
import { stopWithSupervisor } from './supervisor.ts';

const USAGE = `Usage: spinneret <command> [--config FILE] [--help]

Commands:
  coordinator   the relay, scheduler, verification, ledger, deposits, settlement and payouts
  gateway       an OpenAI-compatible API that seals each request before it reaches the network
  modelhost     serves the model manifest and files

Each reads FILE (JSON), then environment variables over it; every setting and its default
is in docs/operating.md. Logs are JSON lines on stdout.`;

const SETTINGS = { coordinator: COORDINATOR_SETTINGS, gateway: GATEWAY_SETTINGS, modelhost: MODELHOST_SETTINGS } as const;

const HELP: Record<keyof typeof SETTINGS, string> = {
  coordinator: `Usage: spinneret coordinator [--config FILE] [--create-key LABEL] [--check]

Runs a coordinator with everything the network needs: the contributor WebSocket relay and
scheduler, verification (canaries, replication, quarantine, signed receipts), prices, the
ledger, deposits, settlement and payouts (the sandbox chain locally; TON through toncenter on
testnet or mainnet), the fleet, /metrics, /healthz and /readyz. On network "mainnet" it refuses
unsafe settings: demo timings, the sandbox chain, no https appUrl for wallet proofs, the hot
wallet's words in the file. With cluster.nats (and database.url) it is one replica of several
sharing PostgreSQL and NATS; see docs/operating.md, "Replicas".

  --config FILE       JSON settings (environment variables override them)
  --create-key LABEL  print a new requester API key (and its deposit memo), then serve
  --check             check the configuration, print it without secrets, and exit
  --help              this text

  keys list           list the requester API keys of the running coordinator (no secrets)
  keys revoke ID      revoke one; it is refused at once (see "spinneret coordinator keys")
  quarantines list    list the quarantined devices and wallets, and the latest lifts
  quarantines lift ID --reason TEXT [--by NAME]
                      lift one on every replica, recorded; voided credits stay voided`,
  gateway: `Usage: spinneret gateway [--config FILE] [--check]

Runs the OpenAI-compatible gateway (/v1/embeddings, /v1/chat/completions, /v1/models): each
request is sealed here, sent to the coordinator as a job, and paid with the gateway's API key.
It sees plaintext: run it where its users' data may be.

  --config FILE   JSON settings (environment variables override them)
  --check         check the configuration, print it without secrets, and exit
  --help          this text`,
  modelhost: `Usage: spinneret modelhost [--config FILE] [--check]

Serves the model manifest (/manifest.json) and the model files in a model hub's layout.

  --config FILE   JSON settings (environment variables override them)
  --check         check the configuration, print it without secrets, and exit
  --help          this text`,
};

/** The settings without secrets, for `--check` and the start line. */
function shown(config: Record<string, unknown>, settings: Record<string, { secret?: boolean }>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config)
      .filter(([key]) => key !== 'sources')
      .map(([key, value]) => [key, settings[key]?.secret === true ? '[secret]' : typeof value === 'bigint' ? value.toString() : value]),
  );
}

/** SIGTERM/SIGINT: `stop` once, then exit 0 (1 if it failed). */
function onSignals(log: Pino, stop: () => Promise<void>, hardStopMs: number): void {
  let stopping = false;
  let orphaned = false;
  const handle = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    // Whatever hangs (a database that stopped answering), the process ends. Without its
    // supervisor, stdout is a pipe nobody reads: no more logging, and no exit hooks that flush it.
    const end = (code: number): void => {
      if (orphaned) process.kill(process.pid, 'SIGKILL');
      setTimeout(() => process.exit(code), 500);
      log.flush(() => process.exit(code));
    };
    setTimeout(() => end(1), hardStopMs).unref();
    log.info({ signal }, 'stopping');
    stop().then(
      () => end(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        end(1);
      },
    );
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  process.on('SIGINT', () => handle('SIGINT'));
  stopWithSupervisor(() => {
    orphaned = true;
    log.level = 'silent';
    handle('supervisor gone');
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (!(command in SETTINGS)) {
    console.error(`Unknown command "${command}".\n\n${USAGE}`);
    return 2;
  }
  const name = command as keyof typeof SETTINGS;
  let values: {
    config?: string | undefined;
    help?: boolean | undefined;
    check?: boolean | undefined;
    'create-key'?: string | undefined;
    url?: string | undefined;
    json?: boolean | undefined;
    reason?: string | undefined;
    by?: string | undefined;
  };
  let positionals: string[];
  const keys = name === 'coordinator' && rest[0] === 'keys';
  const quarantines = name === 'coordinator' && rest[0] === 'quarantines';
  const sub = keys || quarantines;
  const usage = keys ? KEYS_USAGE : quarantines ? QUARANTINES_USAGE : HELP[name];
  try {
    ({ values, positionals } = parseArgs({
      args: sub ? rest.slice(1) : rest,
      allowPositionals: sub,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        check: { type: 'boolean' },
        ...(name === 'coordinator' && !sub && { 'create-key': { type: 'string' as const } }),
        ...(sub && { url: { type: 'string' as const }, json: { type: 'boolean' as const } }),
        ...(quarantines && { reason: { type: 'string' as const }, by: { type: 'string' as const } }),
      },
    }) as { values: typeof values; positionals: string[] });
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
    return 2;
  }
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const file = values.config;
  try {
    if (name === 'coordinator') {
      const config = loadCoordinatorConfig({ file });
      if (keys) {
        return await keysCommand({
          action: positionals[0],
          id: positionals[1],
          url: values.url,
          json: values.json === true,
          config,
          out: (line) => console.log(line),
          err: (line) => console.error(line),
        });
      }
      if (quarantines) {
        return await quarantinesCommand({
          action: positionals[0],
          id: positionals[1],
          reason: values.reason,
          by: values.by,
          url: values.url,
          json: values.json === true,
          config,
          out: (line) => console.log(line),
          err: (line) => console.error(line),
        });
      }
      if (values.check === true) return printCheck(config, COORDINATOR_SETTINGS);
      const log = createLog('coordinator', { level: config['log.level'] });
      // Loaded only to serve: `--help` and `--check` stay quick.
      const { startCoordinatorNode } = await import('./wiring.ts');
      const node = await startCoordinatorNode({ config, log });
      const label = values['create-key'];
      if (label !== undefined) {
        const key = await node.coordinator.createApiKey(label);
        // The secret goes to the operator's terminal, never to the log.
        process.stderr.write(`API key ${key.id} ("${label}"): ${key.secret}\nDeposit memo: ${key.depositMemo}\n`);
      }
      onSignals(log, () => node.close(), config.drainTimeout + 15_000);
      return -1;
    }
    if (name === 'gateway') {
      const config = loadGatewayConfig({ file });
      if (values.check === true) return printCheck(config, GATEWAY_SETTINGS);
      const log = createLog('gateway', { level: config['log.level'] });
      const apiKey = config.apiKey ?? readApiKeyFile(config.apiKeyFile ?? '');
      const { startGateway } = await import('../requester/gateway.ts');
      const gateway = await startGateway({
        port: config['listen.port'],
        host: config['listen.host'],
        coordinatorUrl: config.coordinatorUrl,
        apiKey,
        channel: config.channel,
        log,
        // The gateway's own key for its clients: required where it listens beyond loopback.
        ...(process.env['SPINNERET_GATEWAY_KEY'] !== undefined && { gatewayKey: process.env['SPINNERET_GATEWAY_KEY'] }),
      });
      log.info({ url: gateway.url, coordinatorUrl: config.coordinatorUrl }, 'gateway listening');
      onSignals(log, () => gateway.close(), 15_000);
      return -1;
    }
    const config = loadModelHostConfig({ file });
    if (values.check === true) return printCheck(config, MODELHOST_SETTINGS);
    const log = createLog('modelhost', { level: config['log.level'] });
    const { startModelHost } = await import('../modelhost/server.ts');
    const { standinModels } = await import('../modelhost/models/index.ts');
    // The test models and the stand-ins of published layouts (named as stand-ins, never as the real models).
    const host = await startModelHost({
      port: config['listen.port'],
      host: config['listen.host'],
      corrupt: new Set(config.corrupt),
      standins: standinModels(),
      log,
    });
    log.info({ url: host.url, manifestUrl: host.manifestUrl, corrupt: [...host.corrupt] }, 'model host listening');
    onSignals(log, () => host.close(), 15_000);
    return -1;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`spinneret ${name}: ${err.message}`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
}

function printCheck(config: Record<string, unknown>, settings: Record<string, { secret?: boolean }>): number {
  console.log(JSON.stringify(shown(config, settings), null, 2));
  return 0;
}

/** The key in a file: the file's text, or the gateway key of a local keys file. */
function readApiKeyFile(path: string): string {
  const text = readFileSync(path, 'utf8').trim();
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as { gateway?: { secret?: unknown } };
    if (typeof parsed.gateway?.secret === 'string') return parsed.gateway.secret;
    throw new ConfigError([`apiKeyFile: ${path} is JSON without a gateway.secret`]);
  }
  return text;
}
