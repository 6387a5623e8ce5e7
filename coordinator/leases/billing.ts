/**
 * The money side's view into the job flow: check jobs reserve their maximum price from the
 * network's check budget before they exist, and every job that ends without a result gives
 * its reservation back. Requester jobs reserve before the relay sees them (the requester
 * routes await it); the relay only clamps usage and reports endings, synchronously.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { JobRole } from './check-jobs.ts';

/** A check job about to be created. */
export interface CheckJobBill {
  jobId: string;
  role: Exclude<JobRole, 'job'>;
  /** The key that owns it (reads its events). */
  apiKeyId: string;
  model: string;
  kind: JobKind;
  envelope: BillingEnvelope;
  primaryJobId?: string;
}

/** Hooks the money wiring places in the relay; none may throw. */
export interface RelayBilling {
  /**
   * Reserves a check job's maximum price from the network's check budget, or answers false:
   * the budget (or its limit on checks in flight) cannot cover it, and the check is not created.
   */
  reserveCheck(bill: CheckJobBill): boolean;
  /** A job ended without a final result (failed, cancelled, expired, never placed): its whole reservation goes back. */
  ended(jobId: string, reason: string): void;
  /** The envelope a recent requester job reserved under, for a check of it after the relay forgot the job. */
  envelopeOf(jobId: string): BillingEnvelope | undefined;
}
