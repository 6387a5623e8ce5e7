/**
 * `spinneret coordinator quarantines list|lift <id>`: the operator lists the quarantined devices
 * and wallets of a running coordinator and lifts one, through its operator routes (`GET
 * /v1/operator/quarantines`, `POST /v1/operator/quarantines/lift`), with the operator token of
 * the same configuration. A lift is recorded with who lifted it and why, ends the quarantine on
 * every replica, and gives back nothing the quarantine voided.
 */
import * as v from 'valibot';
import { LiftAnswer, ProblemBody, QuarantineList } from '../protocol/answers.ts';
import { LiftQuarantine } from '../protocol/requests.ts';
import type { CoordinatorConfig } from './config.ts';
import { baseUrl, when } from './keys.ts';

export const QUARANTINES_USAGE = `Usage: spinneret coordinator quarantines list [--config FILE] [--url URL] [--json]
       spinneret coordinator quarantines lift ID --reason TEXT [--by NAME] [--config FILE] [--url URL]

Lists the devices and wallets (as wallet:<address>) quarantined for failed checks, with the
latest lifts, or lifts the quarantine of ID on every replica of a running coordinator (its
operator routes), with the operator token of the configuration (operatorToken or
SPINNERET_OPERATOR_TOKEN). The lift is recorded with NAME (default: $USER) and TEXT. Credits
the quarantine voided stay voided. URL defaults to http://<listen.host>:<listen.port>.`;

export interface QuarantinesCommand {
  action: string | undefined;
  id: string | undefined;
  reason: string | undefined;
  by: string | undefined;
  url: string | undefined;
  json: boolean;
  config: CoordinatorConfig;
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Runs the command; the exit code (0 done, 1 refused or unreachable, 2 usage, 78 no token). */
export async function quarantinesCommand(cmd: QuarantinesCommand): Promise<number> {
  const { action } = cmd;
  const name = 'spinneret coordinator quarantines';
  if (action !== 'list' && action !== 'lift') {
    cmd.err(QUARANTINES_USAGE);
    return 2;
  }
  const lift = { id: cmd.id ?? '', by: cmd.by ?? process.env['USER'] ?? 'operator', reason: cmd.reason ?? '' };
  if (action === 'lift') {
    const checked = v.safeParse(LiftQuarantine, lift);
    if (!checked.success) {
      cmd.err(`${name} lift: ${v.summarize(checked.issues)}\n\n${QUARANTINES_USAGE}`);
      return 2;
    }
  }
  const token = cmd.config.operatorToken;
  if (token === undefined) {
    cmd.err(`${name}: operatorToken: required (SPINNERET_OPERATOR_TOKEN or the configuration file)`);
    return 78;
  }
  const base = baseUrl(cmd.config, cmd.url);
  let res: Response;
  try {
    res = await fetch(`${base}/v1/operator/quarantines${action === 'lift' ? '/lift' : ''}`, {
      method: action === 'list' ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(action === 'lift' && { body: JSON.stringify(lift) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    cmd.err(`${name}: ${base} not reachable: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const problem = v.safeParse(ProblemBody, body);
    cmd.err(
      `${name} ${action}: ${problem.success ? `${problem.output.error.code}: ${problem.output.error.message}` : `HTTP ${res.status}`}`,
    );
    return 1;
  }
  if (action === 'lift') {
    const answer = v.safeParse(LiftAnswer, body);
    if (!answer.success) {
      cmd.err(`${name} lift: ${base} answered no lift (${v.summarize(answer.issues)}); is it a Spinneret coordinator?`);
      return 1;
    }
    const l = answer.output.lifted;
    cmd.out(`lifted ${l.id} at ${when(l.liftedAt)} by ${l.liftedBy}: ${l.reason}`);
    return 0;
  }
  const list = v.safeParse(QuarantineList, body);
  if (!list.success) {
    cmd.err(`${name} list: ${base} answered no quarantine list (${v.summarize(list.issues)}); is it a Spinneret coordinator?`);
    return 1;
  }
  if (cmd.json) {
    cmd.out(JSON.stringify(list.output, null, 2));
    return 0;
  }
  table(cmd.out, [['QUARANTINED', 'SINCE', 'UNTIL'], ...list.output.quarantines.map((q) => [q.id, when(q.since), when(q.until)])]);
  if (list.output.lifts.length > 0) {
    cmd.out('');
    table(cmd.out, [['LIFTED', 'AT', 'BY', 'REASON'], ...list.output.lifts.map((l) => [l.id, when(l.liftedAt), l.liftedBy, l.reason])]);
  }
  return 0;
}

function table(out: (line: string) => void, rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}
