/**
 * Matches a waiting job to a connected contributor: one with a free slot that consents to
 * the job's kind and lists its model, by observed record, never by claims: a device the
 * `demote` hook marks (a worse record than not: more failed checks and faults than clean
 * ones) comes after the others; then the least-loaded contributor, then the one that waited
 * longest since its last job (round-robin, so new devices get work and so get checked). The
 * `loaded` / `cached` states a device reports play no part in placement.
 */
import type { JobKind } from '../../protocol/manifest.ts';
import type { Capabilities, WireError } from '../../protocol/wire.ts';
import type * as v from 'valibot';

type CapabilitiesMessage = v.InferOutput<typeof Capabilities>;
export type ModelAvailability = CapabilitiesMessage['models'][number]['state'];

/** What the scheduler and its hooks see of a connected contributor. */
export interface ContributorView {
  readonly id: string;
  /** X25519 public key the job is sealed to, base64url. */
  readonly hpkeKey: string;
  /** Null until the worker sent `capabilities`: such a worker gets no job. */
  readonly capabilities: CapabilitiesMessage | null;
  /** Slots offered by the worker's last `lease` and not used yet (may be negative: none free). */
  readonly openSlots: number;
  /** Jobs reserved for or running on it now. */
  readonly inFlight: number;
  /** When it was last given a job, ms (0: never). */
  readonly lastAssignedAt: number;
  /** The wallet it earns for, if bound. */
  readonly wallet?: string | null;
}

/** What the scheduler and its hooks see of a job. */
export interface JobView {
  readonly id: string;
  readonly apiKeyId: string;
  readonly model: string;
  readonly kind: JobKind;
  readonly attempt: number;
  /** Contributors that had an earlier attempt of this job. */
  readonly triedBy: ReadonlySet<string>;
}

/**
 * Extension points for verification (reputation, quarantine, replication). Both run inside
 * the scheduling pass, so they must be synchronous and cheap.
 */
export interface SchedulerHooks {
  /** An extra rule on top of slots, consent and model; default: every such contributor is eligible. */
  eligible?(contributor: ContributorView, job: JobView): boolean;
  /** True for a device with a bad observed record: it is placed after all others. Default: none. */
  demote?(contributor: ContributorView): boolean;
  /** Chooses among eligible candidates, given best first; `undefined` leaves the job waiting. Default: the first. */
  pick?(candidates: readonly ContributorView[], job: JobView): ContributorView | undefined;
}

/** How the contributor has the model, or null when it does not list it. */
export function modelAvailability(contributor: ContributorView, model: string): ModelAvailability | null {
  return contributor.capabilities?.models.find((m) => m.id === model)?.state ?? null;
}

/** True when the contributor could take the job now, hooks aside. */
export function canRun(contributor: ContributorView, job: JobView): boolean {
  const caps = contributor.capabilities;
  return (
    caps !== null &&
    contributor.openSlots > 0 &&
    !job.triedBy.has(contributor.id) &&
    caps.consent.includes(job.kind) &&
    modelAvailability(contributor, job.model) !== null
  );
}

/** The contributor the job should go to, or undefined when none can take it now. */
export function chooseContributor<C extends ContributorView>(
  contributors: Iterable<C>,
  job: JobView,
  hooks: SchedulerHooks = {},
): C | undefined {
  const candidates: { contributor: C; rank: number }[] = [];
  for (const contributor of contributors) {
    if (!canRun(contributor, job)) continue;
    if (hooks.eligible !== undefined && !hooks.eligible(contributor, job)) continue;
    candidates.push({ contributor, rank: hooks.demote?.(contributor) === true ? 1 : 0 });
  }
  if (candidates.length === 0) return undefined;
  candidates.sort(
    (a, b) =>
      a.rank - b.rank || a.contributor.inFlight - b.contributor.inFlight || a.contributor.lastAssignedAt - b.contributor.lastAssignedAt,
  );
  const sorted = candidates.map((c) => c.contributor);
  if (hooks.pick === undefined) return sorted[0];
  const picked = hooks.pick(sorted, job);
  // A hook returns one of the views it was given; map it back to the live object.
  return picked === undefined ? undefined : sorted.find((c) => c.id === picked.id);
}

/** Why a job waited `waitedMs` in vain: no contributor serves its model and kind, or all that do stayed busy. */
export function noContributorError(contributors: Iterable<ContributorView>, job: JobView, waitedMs: number): WireError {
  const seconds = Math.round(waitedMs / 1000);
  let serving = 0;
  for (const c of contributors)
    if (c.capabilities?.consent.includes(job.kind) === true && modelAvailability(c, job.model) !== null) serving++;
  return serving === 0
    ? { code: 'UNKNOWN_MODEL', message: `No connected contributor serves model "${job.model}" for ${job.kind} jobs (waited ${seconds} s).` }
    : { code: 'QUOTA', message: `The ${serving} contributor(s) serving "${job.model}" stayed busy for ${seconds} s; try again later.` };
}
