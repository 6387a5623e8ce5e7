/**
 * The replicas' message bus: NATS core (publish, subscribe, request/reply) with JSON bodies.
 * The routing code sees only {@link Bus}, so its subjects and checks stay in one place.
 *
 * Subjects, under a prefix per database (`spinneret.<schema>`, so deployments and test runs
 * on one NATS server never hear each other):
 *
 * | subject | kind | from → to | body (protocol/cluster.ts) |
 * |---|---|---|---|
 * | `<p>.alive` | publish, all | every replica, each heartbeat | `Alive` |
 * | `<p>.r.<id>.claim` | request/reply | a job's owner → replica `<id>` | `Claim` → `Granted` |
 * | `<p>.r.<id>.down` | publish | owner → the contributor's replica | `Down` |
 * | `<p>.r.<id>.up` | publish | the contributor's replica → owner | `Up` |
 * | `<p>.r.<id>.release` | publish | owner → the contributor's replica | `Release` |
 * | `<p>.r.<id>.gone` | publish | the contributor's replica → owner | `Gone` |
 * | `<p>.r.<id>.holds` | request/reply | any replica → replica `<id>` | `Holds` → `HoldsAnswer` |
 * | `<p>.r.<id>.call` | request/reply | the replica a requester called → the job's owner `<id>` | `Call` → `CallAnswer` |
 * | `<p>.r.<id>.part` | publish | owner → the called replica `<id>` | `Part` |
 * | `<p>.r.<id>.stop` | publish | the called replica → owner `<id>` | `Stop` |
 * | `<p>.policy` | publish, all | the replica that quarantined or benched a device → every replica | `PolicyChanged` |
 *
 * Why core NATS and no JetStream stream: what must outlive a replica is in PostgreSQL (jobs,
 * ledger, billing, sessions); what travels here is a job's sealed payload and its result chunks,
 * which by design live only in the memory of the replicas that carry them. A replica that dies
 * takes its part of a job with it, and the job is re-leased (its contributor's replica died)
 * or failed `RESTARTED` (its owner died) from the database: a redelivered message could only
 * replay a lease that no longer exists.
 */
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type * as v from 'valibot';
import * as s from 'valibot';

export interface Bus {
  /** False when NATS refused it (larger than the server's `max_payload`, or the connection closed); the reason is logged. */
  publish(subject: string, body: unknown): boolean;
  /** Resolves the reply's body; rejects on no responder or timeout. */
  request(subject: string, body: unknown, timeoutMs: number): Promise<unknown>;
  /**
   * Calls `handler` with each body that passes `schema`; others are dropped and counted, and
   * logged with the reason (at most one line per subject every {@link DROP_LOG_MS}). `reply`
   * answers a request.
   */
  subscribe<S extends v.GenericSchema>(
    subject: string,
    schema: S,
    handler: (body: v.InferOutput<S>, reply: (answer: unknown) => void) => void,
  ): void;
  readonly dropped: number;
  /** The largest message the server takes, bytes (its `max_payload`). */
  readonly maxPayload: number;
  close(): Promise<void>;
}

/** A subject's dropped messages are logged at most once this often, ms; the rest are counted, and named in the next line. */
export const DROP_LOG_MS = 10_000;

/** Connects to NATS at `url`; `name` shows in the server's connection list. */
export async function connectBus(url: string, name: string, onError: (message: string, err: unknown) => void): Promise<Bus> {
  // noAsyncTraces: no stack trace captured per request (a timeout's error says only the subject).
  const nc: NatsConnection = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true });
  const subs: Subscription[] = [];
  let dropped = 0;
  /** Per subject: when a drop was last logged, and how many since were not. */
  const dropLog = new Map<string, { at: number; quiet: number }>();
  const drop = (subject: string, why: string, detail: unknown): void => {
    dropped++;
    const now = Date.now();
    const last = dropLog.get(subject);
    if (last !== undefined && now - last.at < DROP_LOG_MS) {
      last.quiet++;
      return;
    }
    dropLog.set(subject, { at: now, quiet: 0 });
    const more = last !== undefined && last.quiet > 0 ? ` (and ${last.quiet} more since the last logged)` : '';
    onError(`dropped a ${why} on ${subject}${more}`, detail);
  };
  const encode = (body: unknown): string => JSON.stringify(body);
  return {
    publish(subject, body) {
      const data = encode(body);
      try {
        nc.publish(subject, data);
        return true;
      } catch (err) {
        const limit = nc.info?.max_payload ?? 0;
        const hint = data.length > limit ? ` (${data.length} bytes; the server's max_payload is ${limit}: set max_payload: 8MB)` : '';
        onError(`NATS refused a message on ${subject}${hint}`, err);
        return false;
      }
    },
    async request(subject, body, timeoutMs) {
      const msg = await nc.request(subject, encode(body), { timeout: timeoutMs });
      return msg.json();
    },
    subscribe(subject, schema, handler) {
      subs.push(
        nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err !== null) return onError(`subscription ${subject} failed`, err);
            let raw: unknown;
            try {
              raw = msg.json();
            } catch (e) {
              return drop(subject, 'message that is not JSON', e);
            }
            const parsed = s.safeParse(schema, raw);
            if (!parsed.success) return drop(subject, 'malformed message', s.summarize(parsed.issues));
            try {
              handler(parsed.output, (answer) => void msg.respond(encode(answer)));
            } catch (e) {
              onError(`handling a message on ${subject} failed`, e);
            }
          },
        }),
      );
    },
    get dropped() {
      return dropped;
    },
    get maxPayload() {
      return nc.info?.max_payload ?? 1024 * 1024;
    },
    async close() {
      for (const sub of subs) sub.unsubscribe();
      await nc.drain().catch(() => nc.close());
    },
  };
}

/** The subjects of one deployment (see the table above). */
export function subjects(prefix: string) {
  return {
    alive: `${prefix}.alive`,
    policy: `${prefix}.policy`,
    claim: (replica: string) => `${prefix}.r.${replica}.claim`,
    down: (replica: string) => `${prefix}.r.${replica}.down`,
    up: (replica: string) => `${prefix}.r.${replica}.up`,
    release: (replica: string) => `${prefix}.r.${replica}.release`,
    gone: (replica: string) => `${prefix}.r.${replica}.gone`,
    holds: (replica: string) => `${prefix}.r.${replica}.holds`,
    call: (replica: string) => `${prefix}.r.${replica}.call`,
    part: (replica: string) => `${prefix}.r.${replica}.part`,
    stop: (replica: string) => `${prefix}.r.${replica}.stop`,
  };
}
