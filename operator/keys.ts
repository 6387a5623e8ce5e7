/**
 * `spinneret coordinator keys list|revoke <id>`: the operator lists and revokes requester API
 * keys through a running coordinator's operator routes (`GET/DELETE /v1/operator/keys`), with
 * the operator token of the same configuration. Secrets are never shown: the coordinator keeps
 * only their hashes, and the list has none.
 */
import * as v from 'valibot';
import { ApiKeyList, ProblemBody } from '../protocol/answers.ts';
import type { CoordinatorConfig } from './config.ts';
import { isSafeLine, MAX_PATH_SEGMENT } from '../protocol/text.ts';

export const KEYS_USAGE = `Usage: spinneret coordinator keys list [--config FILE] [--url URL] [--json]
       spinneret coordinator keys revoke ID [--config FILE] [--url URL]

Lists or revokes requester API keys of a running coordinator (its operator routes), with the
operator token of the configuration (operatorToken or SPINNERET_OPERATOR_TOKEN). URL defaults
to http://<listen.host>:<listen.port>. A revoked key is refused at once. Secrets are never shown.`;

export interface KeysCommand {
  action: string | undefined;
  id: string | undefined;
  url: string | undefined;
  json: boolean;
  config: CoordinatorConfig;
  out: (line: string) => void;
  err: (line: string) => void;
}

/** The coordinator's address from its own listen settings (a wildcard bind is reached on loopback). */
export function baseUrl(config: CoordinatorConfig, url: string | undefined): string {
  if (url !== undefined) return url.replace(/\/+$/, '');
  const host = config['listen.host'];
  const reach = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${reach}:${config['listen.port']}`;
}

export const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

/** Runs the command; the exit code (0 done, 1 refused or unreachable, 2 usage, 78 no token). */
export async function keysCommand(cmd: KeysCommand): Promise<number> {
  const { action, id } = cmd;
  if (action !== 'list' && action !== 'revoke') {
    cmd.err(KEYS_USAGE);
    return 2;
  }
  if (action === 'revoke' && (id === undefined || id === '' || id.length > MAX_PATH_SEGMENT || !isSafeLine(id))) {
    cmd.err(`spinneret coordinator keys revoke: expected a key id (from "keys list"), got ${JSON.stringify(id ?? '')}\n\n${KEYS_USAGE}`);
    return 2;
  }
  const token = cmd.config.operatorToken;
  if (token === undefined) {
    cmd.err('spinneret coordinator keys: operatorToken: required (SPINNERET_OPERATOR_TOKEN or the configuration file)');
    return 78;
  }
  const base = baseUrl(cmd.config, cmd.url);
  const path = action === 'list' ? '/v1/operator/keys' : `/v1/operator/keys/${encodeURIComponent(id ?? '')}`;
  let res: Response;
  try {
    res = await fetch(base + path, {
      method: action === 'list' ? 'GET' : 'DELETE',
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    cmd.err(`spinneret coordinator keys: ${base} not reachable: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const problem = v.safeParse(ProblemBody, body);
    const reason = problem.success ? `${problem.output.error.code}: ${problem.output.error.message}` : `HTTP ${res.status}`;
    cmd.err(`spinneret coordinator keys ${action}: ${reason}`);
    return 1;
  }
  if (action === 'revoke') {
    cmd.out(`revoked ${id}`);
    return 0;
  }
  const list = v.safeParse(ApiKeyList, body);
  if (!list.success) {
    cmd.err(`spinneret coordinator keys list: ${base} answered no key list (${v.summarize(list.issues)}); is it a Spinneret coordinator?`);
    return 1;
  }
  const keys = list.output.keys;
  if (cmd.json) {
    cmd.out(JSON.stringify(keys, null, 2));
    return 0;
  }
  const rows = [
    ['ID', 'LABEL', 'JOBS/MIN', 'IN FLIGHT', 'DEPOSIT MEMO', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [
      k.id,
      k.label,
      String(k.jobsPerMinute),
      String(k.maxInFlight),
      k.depositMemo,
      when(k.createdAt),
      when(k.revokedAt),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    cmd.out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
  return 0;
}
