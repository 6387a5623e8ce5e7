/**
 * An owner's fleet: the devices that earn for their wallet (enrolled with one of their
 * tokens, or bound by a wallet proof), what each is doing and has earned, and the owner's
 * remote controls (pause, resume, a message on the screen). A remote pause is kept in the
 * database and sent again each time the device connects.
 */
import type { FleetDevice, FleetView } from '../../protocol/answers.ts';
import type { ControlRequest } from '../../protocol/page-requests.ts';
import { PROTOCOL_VERSION } from '../../protocol/wire.ts';
import { systemClock, type Clock } from '../clock.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import { pendingAccount, walletBalances } from '../ledger/index.ts';
import { toInt, type SqlDb } from '../store/sql.ts';

/** One device on the fleet page, and the page's whole answer (`GET /v1/fleet`). */
export type { FleetDevice, FleetView };

/** `not-found`: no such device anywhere; `forbidden`: the device earns for someone else. */
export type ControlOutcome = { ok: true; delivered: boolean } | { ok: false; reason: 'not-found' | 'forbidden' };

export interface FleetOptions {
  db: SqlDb;
  /** The connected contributor with this id (the gateway). */
  live: (contributorId: string) => ConnectedContributor | undefined;
  clock?: Clock;
}

interface Member {
  label: string | null;
  lastSeen: number | null;
}

export class Fleet {
  readonly #db: SqlDb;
  readonly #live: FleetOptions['live'];
  readonly #clock: Clock;

  constructor(options: FleetOptions) {
    this.#db = options.db;
    this.#live = options.live;
    this.#clock = options.clock ?? systemClock;
  }

  /** The devices earning for `wallet`, in the order they joined. */
  async list(wallet: string): Promise<FleetView> {
    const members = await this.#members(wallet);
    const ids = [...members.keys()];
    if (ids.length === 0) return { wallet, devices: [] };
    const [jobs, earned, controls] = await Promise.all([this.#jobsDone(ids), this.#earnings(wallet, ids), this.#controls(ids)]);
    const now = this.#clock.now();
    const devices = ids.map((id): FleetDevice => {
      const member = members.get(id);
      const live = this.#live(id);
      const status = live?.status ?? null;
      return {
        contributorId: id,
        label: member?.label ?? status?.label ?? null,
        connected: live !== undefined,
        lastSeenAt: live !== undefined ? now : (member?.lastSeen ?? null),
        status: status === null ? null : { visibility: status.visibility, pausedBy: status.pausedBy, pace: status.pace ?? null },
        remotePaused: controls.get(id)?.paused ?? false,
        jobsDone: jobs.get(id) ?? 0,
        earned: earned.get(id) ?? { pendingNano: '0', settledNano: '0', paidNano: '0' },
      };
    });
    return { wallet, devices };
  }

  /** Sends `request` to the device if it belongs to `owner`; a pause or resume is remembered. */
  async control(owner: string, contributorId: string, request: ControlRequest): Promise<ControlOutcome> {
    const members = await this.#members(owner);
    if (!members.has(contributorId)) {
      const { rows } = await this.#db.query('SELECT 1 FROM contributors WHERE id = $1', [contributorId]);
      const enrolled = await this.#db.query('SELECT 1 FROM enrollment_sessions WHERE contributor_id = $1', [contributorId]);
      return { ok: false, reason: rows.length > 0 || enrolled.rows.length > 0 ? 'forbidden' : 'not-found' };
    }
    if (request.action !== 'message') {
      await this.#db.query(
        `INSERT INTO fleet_controls (contributor_id, owner, paused, message, updated_at) VALUES ($1, $2, $3, NULL, $4)
         ON CONFLICT (contributor_id) DO UPDATE SET owner = EXCLUDED.owner, paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at`,
        [contributorId, owner, request.action === 'pause', this.#clock.now()],
      );
    } else {
      await this.#db.query(
        `INSERT INTO fleet_controls (contributor_id, owner, paused, message, updated_at) VALUES ($1, $2, FALSE, $3, $4)
         ON CONFLICT (contributor_id) DO UPDATE SET owner = EXCLUDED.owner, message = EXCLUDED.message, updated_at = EXCLUDED.updated_at`,
        [contributorId, owner, request.text ?? '', this.#clock.now()],
      );
    }
    const live = this.#live(contributorId);
    live?.send({
      v: PROTOCOL_VERSION,
      type: 'control',
      action: request.action,
      ...(request.action === 'message' && { text: request.text ?? '' }),
    });
    return { ok: true, delivered: live !== undefined };
  }

  /** Shows `text` on each of these devices that is connected now (nothing is remembered). */
  tell(contributorIds: readonly string[], text: string): void {
    for (const id of contributorIds) this.#live(id)?.send({ v: PROTOCOL_VERSION, type: 'control', action: 'message', text });
  }

  /** On each connection: the owner's standing pause and last message, sent again. */
  async welcomed(contributor: ConnectedContributor): Promise<void> {
    const { rows } = await this.#db.query<{ owner: string; paused: boolean; message: string | null }>(
      `SELECT f.owner, f.paused, f.message FROM fleet_controls f WHERE f.contributor_id = $1`,
      [contributor.id],
    );
    const row = rows[0];
    if (row === undefined) return;
    // Only while the device still belongs to that owner.
    if (!(await this.#members(row.owner)).has(contributor.id)) return;
    if (row.paused) contributor.send({ v: PROTOCOL_VERSION, type: 'control', action: 'pause' });
    if (row.message !== null && row.message !== '')
      contributor.send({ v: PROTOCOL_VERSION, type: 'control', action: 'message', text: row.message });
  }

  /** Devices earning for `wallet`: enrolled with a live token of theirs, or recorded with their wallet. */
  async #members(wallet: string): Promise<Map<string, Member>> {
    const { rows } = await this.#db.query<{ id: string; label: string | null; last_seen: unknown; joined: unknown }>(
      `SELECT c.id, s.label, c.last_seen, coalesce(s.created_at, c.first_seen) AS joined
       FROM contributors c LEFT JOIN enrollment_sessions s ON s.contributor_id = c.id
       WHERE c.wallet = $1
       UNION
       SELECT s.contributor_id AS id, s.label, c.last_seen, s.created_at AS joined
       FROM enrollment_sessions s JOIN enrollment_tokens t ON t.id = s.token_id
       LEFT JOIN contributors c ON c.id = s.contributor_id
       WHERE t.owner = $1 AND t.revoked_at IS NULL AND (c.wallet IS NULL OR c.wallet = $1)
       ORDER BY joined, id`,
      [wallet],
    );
    const members = new Map<string, Member>();
    for (const row of rows) {
      if (!members.has(row.id)) members.set(row.id, { label: row.label, lastSeen: row.last_seen === null ? null : toInt(row.last_seen) });
    }
    return members;
  }

  async #jobsDone(ids: string[]): Promise<Map<string, number>> {
    const { rows } = await this.#db.query<{ contributor_id: string; n: unknown }>(
      `SELECT contributor_id, count(*) AS n FROM jobs WHERE state = 'done' AND contributor_id = ANY($1::text[]) GROUP BY contributor_id`,
      [ids],
    );
    return new Map(rows.map((r) => [r.contributor_id, toInt(r.n)]));
  }

  async #controls(ids: string[]): Promise<Map<string, { paused: boolean }>> {
    const { rows } = await this.#db.query<{ contributor_id: string; paused: boolean }>(
      'SELECT contributor_id, paused FROM fleet_controls WHERE contributor_id = ANY($1::text[])',
      [ids],
    );
    return new Map(rows.map((r) => [r.contributor_id, { paused: r.paused }]));
  }

  /**
   * Per device: its credits for `wallet` still pending, and its settled credits split into
   * paid and unpaid by walking them oldest first against the wallet's total paid.
   */
  async #earnings(wallet: string, ids: string[]): Promise<Map<string, FleetDevice['earned']>> {
    const { paid } = await walletBalances(this.#db, wallet);
    const { rows } = await this.#db.query<{ cid: string; pending: string; settled: string; paid: string }>(
      `WITH credits AS (
         SELECT j.contributor_id AS cid, e.state, e.updated_at, e.job_id, -l.amount AS amount
         FROM earnings_jobs e
         JOIN jobs j ON j.id = e.job_id
         JOIN ledger_entries l ON l.ref = e.job_id AND l.kind = 'job.credit' AND l.account = $2
         WHERE e.wallet = $1 AND e.state IN ('pending', 'settled')
       ), ordered AS (
         SELECT cid, state, amount,
           CASE WHEN state = 'settled' THEN sum(CASE WHEN state = 'settled' THEN amount ELSE 0 END) OVER (ORDER BY updated_at, job_id) END AS upto
         FROM credits
       )
       SELECT cid,
         coalesce(sum(amount) FILTER (WHERE state = 'pending'), 0)::text AS pending,
         coalesce(sum(amount) FILTER (WHERE state = 'settled'), 0)::text AS settled,
         coalesce(sum(greatest(0, least(amount, $3::bigint - (upto - amount)))) FILTER (WHERE state = 'settled'), 0)::text AS paid
       FROM ordered WHERE cid = ANY($4::text[]) GROUP BY cid`,
      [wallet, pendingAccount(wallet), paid.toString(), ids],
    );
    return new Map(
      rows.map((r) => {
        const settled = BigInt(r.settled);
        const paidPart = BigInt(r.paid);
        return [r.cid, { pendingNano: r.pending, settledNano: (settled - paidPart).toString(), paidNano: r.paid }];
      }),
    );
  }
}
