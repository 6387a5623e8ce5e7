/**
 * The coordinator's time source, behind a small interface so that time-dependent logic
 * (leases, heartbeats, quotas) is tested without sleeping.
 */

/** The time source. Milliseconds since the Unix epoch. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
