/** What billing did, as counts for operators and tests, and their lines on `/metrics`. */

/** What billing did, for operators and tests. */
export interface BillingCounts {
  /** Requester jobs whose maximum price was reserved. */
  jobsReserved: number;
  /** Requester jobs refused with 402. */
  jobsRefused: number;
  /** Check jobs the budget reserved for. */
  checksReserved: number;
  /** Check jobs not created because the budget (or its limit) could not cover them. */
  checksRefused: number;
  /** Reservations given back (failed, cancelled, expired, stale). */
  released: number;
  /** Finished jobs whose contributor claimed more than the envelope, billed at the envelope. */
  clamped: number;
}

/** The counts in the Prometheus text format, appended to `/metrics`. */
export function renderBillingMetrics(counts: Readonly<BillingCounts>): string {
  const lines: [string, string, number][] = [
    ['spinneret_billing_jobs_reserved_total', 'Requester jobs whose maximum price was reserved.', counts.jobsReserved],
    ['spinneret_billing_jobs_refused_total', 'Requester jobs refused with 402 (balance short).', counts.jobsRefused],
    ['spinneret_billing_checks_reserved_total', 'Check jobs paid from the network budget.', counts.checksReserved],
    [
      'spinneret_billing_checks_refused_total',
      'Check jobs not created: the budget or its limit could not cover them.',
      counts.checksRefused,
    ],
    ['spinneret_billing_released_total', 'Reservations given back (failed, cancelled, expired, stale).', counts.released],
    ['spinneret_billing_clamped_total', 'Finished jobs billed at the envelope because the contributor claimed more.', counts.clamped],
  ];
  return lines.map(([name, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${value}\n`).join('');
}
