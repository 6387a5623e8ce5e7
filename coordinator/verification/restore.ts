/**
 * What the policy and the requesters' standing knew before a restart, read back from the
 * database: recent reports and disputes, quarantines of devices and wallets, faults, benches,
 * and each device's clean and failed checks.
 */
import { WALLET_PREFIX } from './judgement-writer.ts';
import type { VerificationPolicy } from './policy.ts';
import type { RequesterStanding } from './requesters.ts';
import type { ReputationStore } from './reputation-store.ts';
import type { VerificationStore } from './verification-store.ts';

export async function restoreState(
  stores: { store: VerificationStore; reputation: ReputationStore },
  policy: VerificationPolicy,
  standing: RequesterStanding,
  now: number,
): Promise<void> {
  const { store, reputation } = stores;
  for (const r of await store.reportsSince(now - standing.windowMs)) {
    standing.note(r.apiKeyId, r.outcome !== 'ok' || r.disputed, r.at);
    if (r.disputed) standing.dispute(r.contributorId, r.apiKeyId, r.at);
  }
  const quarantines = await store.quarantines(now);
  for (const [key, until] of quarantines) {
    if (key.startsWith(WALLET_PREFIX)) policy.quarantineWallet(key.slice(WALLET_PREFIX.length), until ?? Number.POSITIVE_INFINITY);
  }
  const saved = await reputation.load();
  const devices = [...(await store.contributors()), ...quarantines.keys(), ...saved.faults.keys(), ...saved.benched.keys()].filter(
    (id) => !id.startsWith(WALLET_PREFIX),
  );
  for (const contributorId of new Set(devices)) {
    const k = await store.kindCounts(contributorId);
    const until = quarantines.get(contributorId);
    policy.restore(contributorId, {
      clean: (k['canary-pass'] ?? 0) + (k['replica-agree'] ?? 0) + (k['tie-break-pass'] ?? 0),
      failed: (k['canary-fail'] ?? 0) + (k['tie-break-fail'] ?? 0),
      quarantinedUntil: until === undefined ? null : (until ?? Number.POSITIVE_INFINITY),
      faults: saved.faults.get(contributorId) ?? 0,
      benched: saved.benched.get(contributorId) ?? new Map<string, number>(),
    });
  }
}
