/** A replica's figures on `/metrics`: whether it runs the singletons, its live peers, the routing's and the call forwarding's counts. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Replica } from './replica.ts';

export function registerClusterMetrics(registry: Registry, replica: Replica): void {
  new Gauge({
    name: 'spinneret_cluster_singletons',
    help: 'Whether this replica holds the singleton lock (settlement, payouts, deposits, recovery): 1 or 0.',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      this.set({ replica: replica.id }, replica.leader ? 1 : 0);
    },
  });
  new Gauge({
    name: 'spinneret_cluster_peers',
    help: 'Other replicas heard from within the last 3 s.',
    registers: [registry],
    collect() {
      this.set(replica.routing.peers.length);
    },
  });
  const counts = replica.routing.counts;
  const counter = (name: string, help: string, read: () => number): void =>
    void new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter('spinneret_cluster_claims_total', 'Slots this replica asked other replicas for, for its waiting jobs.', () => counts.claimsSent);
  counter('spinneret_cluster_claims_granted_total', 'Of those, slots granted.', () => counts.claimsGranted);
  counter(
    'spinneret_cluster_slots_lent_total',
    "Slots of this replica's contributors lent to other replicas' jobs.",
    () => counts.slotsLent,
  );
  counter(
    'spinneret_cluster_remote_results_total',
    "Result messages of this replica's jobs from other replicas' contributors.",
    () => counts.remoteResults,
  );
  counter('spinneret_cluster_peers_lost_total', 'Replicas that went silent or restarted, as seen here.', () => counts.peersLost);
  counter(
    'spinneret_cluster_slots_expired_total',
    'Slots lent to another replica that came back unused after `lendForMs` (a late grant, or a claim in its name).',
    () => counts.slotsExpired,
  );
  counter(
    'spinneret_cluster_alive_refused_total',
    'Heartbeats not taken: another process speaking as a replica still heard, or more replicas than 256.',
    () => counts.aliveRefused,
  );
  counter(
    'spinneret_cluster_bus_dropped_total',
    'Messages on the replicas’ bus dropped here: not JSON, or not of their subject’s schema.',
    () => replica.dropped,
  );
  const calls = replica.forwarding.counts;
  counter(
    'spinneret_cluster_calls_forwarded_total',
    "Requester calls on another replica's job that this replica passed to the job's owner.",
    () => calls.forwarded,
  );
  counter(
    'spinneret_cluster_calls_served_total',
    "Requester calls other replicas passed here for this replica's jobs.",
    () => calls.served,
  );
  counter(
    'spinneret_cluster_streams_owner_lost_total',
    'Event streams passed on from another replica that ended RESTARTED because that replica stopped.',
    () => calls.ownerLost,
  );
  counter(
    'spinneret_cluster_owner_questions_total',
    "`holds` questions sent to find a job's owner (one per job its row names; one per live replica for a job not yet written).",
    () => calls.holdsAsked,
  );
  const policy = replica.policy.counts;
  counter(
    'spinneret_cluster_policy_heard_total',
    'Words from other replicas that they quarantined or benched a device, each followed by a read of the shared state.',
    () => policy.heard,
  );
  counter('spinneret_cluster_policy_said_total', 'Quarantines or benches written here and told to the other replicas.', () => policy.said);
}
