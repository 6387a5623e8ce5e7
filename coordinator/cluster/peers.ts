/** The other replicas this one hears from (coordinator/cluster/routing.ts): alive, restarted or silent. */
import type { Relay } from '../leases/relay.ts';
import { RemoteContributor } from './routing-context.ts';
import { MAX_PEERS } from './routing-context.ts';

/** What one replica's contributors serve, as heartbeat entries `<model>\n<kind>\n<engine class>` (at most 256). */
export function servedBy(relay: Relay | null): string[] {
  const out = new Set<string>();
  if (relay === null) return [];
  for (const c of relay.contributors.values()) {
    if (c instanceof RemoteContributor || c.capabilities === null) continue;
    for (const model of c.capabilities.models) {
      const engineClass = relay.engineClassOf(c, model.id);
      for (const kind of c.capabilities.consent) {
        if (out.size >= 256) return [...out];
        out.add(`${model.id}\n${kind}\n${engineClass}`);
      }
    }
  }
  return [...out];
}

/** Peers heard from: their boot id, when, and what their contributors serve. */
export class Peers {
  readonly #peers = new Map<string, { boot: string; seenAt: number; serves: ReadonlySet<string>; modelKinds: ReadonlySet<string> }>();

  /**
   * @param me this replica, whose own heartbeats are not a peer's
   * @param lost called with each peer found restarted or silent, after it left the table
   */
  constructor(
    private readonly me: string,
    private readonly lost: (replica: string, why: string) => void,
    private readonly o: { heartbeatMs: number; refused: () => void },
  ) {}

  has(replica: string): boolean {
    return this.#peers.has(replica);
  }

  /** Live peers (not this replica). */
  list(): string[] {
    return [...this.#peers.keys()];
  }

  /** Whether a live peer has a contributor serving `model` and `kind` (and `engineClass`, when given). */
  serve(model: string, kind: string, engineClass?: string): boolean {
    const exact = engineClass === undefined ? null : `${model}\n${kind}\n${engineClass}`;
    const modelKind = `${model}\n${kind}`;
    for (const peer of this.#peers.values()) {
      if (exact !== null ? peer.serves.has(exact) : peer.modelKinds.has(modelKind)) return true;
    }
    return false;
  }

  /**
   * The peers to ask for a slot of `model` and `kind`: those whose last heartbeat says a
   * contributor of theirs serves it; every live peer when none says so (a contributor that
   * joined since, or a list cut at 256 entries).
   */
  forClaim(model: string, kind: string): string[] {
    const modelKind = `${model}\n${kind}`;
    const serving: string[] = [];
    for (const [replica, peer] of this.#peers) if (peer.modelKinds.has(modelKind)) serving.push(replica);
    return serving.length > 0 ? serving : this.list();
  }

  /**
   * A heartbeat of `replica` at `now` (ms). A new boot id is a restart only once the old one has
   * gone quiet (two heartbeats): while both speak, one of them is not the replica (its lock
   * allows one process), and the one heard first is kept. At most {@link MAX_PEERS} are heard.
   */
  heard(replica: string, boot: string, serves: readonly string[], now: number): void {
    if (replica === this.me) return;
    const known = this.#peers.get(replica);
    if (known !== undefined && known.boot !== boot) {
      if (now - known.seenAt < 2 * this.o.heartbeatMs) return this.o.refused();
      this.#drop(replica, 'restarted');
    }
    if (known === undefined && this.#peers.size >= MAX_PEERS) return this.o.refused();
    const modelKinds = new Set(serves.map((s) => s.slice(0, s.lastIndexOf('\n'))));
    this.#peers.set(replica, { boot, seenAt: now, serves: new Set(serves), modelKinds });
  }

  /** Peers silent longer than `deadAfterMs` at `now` (ms) are lost. */
  sweep(now: number, deadAfterMs: number): void {
    for (const [replica, peer] of this.#peers) if (now - peer.seenAt > deadAfterMs) this.#drop(replica, 'went silent');
  }

  #drop(replica: string, why: string): void {
    this.#peers.delete(replica);
    this.lost(replica, why);
  }
}
