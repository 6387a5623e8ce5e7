/**
 * PostgreSQL advisory locks for replicas, held on one dedicated connection per replica (a
 * session lock lives exactly as long as its connection: a replica that dies, or loses its
 * database, lets go of its locks with it):
 *
 * - the replica lock, `(spinneret.replica, <schema>:<replica id>)`: taken at start and held for
 *   life. Another live process with the same id is refused; a replica whose lock can be taken
 *   is dead, and its unfinished jobs may be failed (see recovery.ts);
 * - the singleton lock, `(spinneret.singletons, <schema>)`: whoever holds it runs settlement,
 *   payouts, the deposit watcher and the recovery of dead replicas' jobs. The others try again
 *   every `retryMs` and one takes over when the holder's connection ends.
 */
import pg from 'pg';
import { errorText } from '../log.ts';

export interface LockOptions {
  url: string;
  /** The schema the replicas share (locks are per schema: test runs on one server do not meet). */
  schema: string;
  replicaId: string;
  /** Told once when the connection ends: every lock is gone, the replica must stop its singletons. */
  onLost: (why: string) => void;
}

const REPLICA = 'spinneret.replica';
const SINGLETONS = 'spinneret.singletons';

export class ReplicaLocks {
  readonly #client: pg.Client;
  readonly #schema: string;
  #lost = false;

  private constructor(client: pg.Client, schema: string) {
    this.#client = client;
    this.#schema = schema;
  }

  /**
   * Connects and takes this replica's lock, waiting up to `waitMs` for a previous process with
   * the same id to be gone; refuses when another live one holds it.
   */
  static async open(options: LockOptions, waitMs = 10_000): Promise<ReplicaLocks> {
    const client = new pg.Client({ connectionString: options.url, keepAlive: true, keepAliveInitialDelayMillis: 5_000 });
    await client.connect();
    const locks = new ReplicaLocks(client, options.schema);
    const lost = (why: string): void => {
      if (locks.#lost) return;
      locks.#lost = true;
      options.onLost(why);
    };
    client.on('error', (err) => lost(`the lock connection failed: ${errorText(err)}`));
    client.on('end', () => lost('the lock connection ended'));
    const until = Date.now() + waitMs;
    for (;;) {
      if (await locks.#try(REPLICA, options.replicaId)) return locks;
      if (Date.now() > until) {
        locks.#lost = true;
        await client.end().catch(() => undefined);
        throw new Error(
          `replica id ${options.replicaId} is held by another live replica on schema ${options.schema}; give each its own cluster.replicaId`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Takes the singleton lock if it is free (true), or holds it already (true again: session locks stack, so only once). */
  #leader = false;
  async tryLeader(): Promise<boolean> {
    if (this.#lost) return false;
    if (!this.#leader) this.#leader = await this.#try(SINGLETONS, '');
    return this.#leader;
  }

  get leader(): boolean {
    return this.#leader && !this.#lost;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Runs `fn` while holding `replicaId`'s lock when that replica is dead (nobody holds it), so it
   * cannot start again meanwhile; false, and `fn` not run, while it lives.
   */
  async whileDead(replicaId: string, fn: () => Promise<void>): Promise<boolean> {
    if (!(await this.#try(REPLICA, replicaId))) return false;
    try {
      await fn();
    } finally {
      await this.#client.query('SELECT pg_advisory_unlock(hashtext($1), hashtext($2))', [REPLICA, `${this.#schema}:${replicaId}`]);
    }
    return true;
  }

  async #try(space: string, name: string): Promise<boolean> {
    const { rows } = await this.#client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS ok', [
      space,
      `${this.#schema}:${name}`,
    ]);
    return rows[0]?.ok === true;
  }

  /** Ends the connection: every lock goes with it. */
  async close(): Promise<void> {
    this.#lost = true;
    await this.#client.end().catch(() => undefined);
  }
}
