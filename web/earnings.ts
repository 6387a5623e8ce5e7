/** The "Earnings" card: pending, settled and paid nanoTON for the proven wallet, and each payout's transaction. */
import { h, replace } from './dom.ts';

/** What `GET /v1/earnings/:wallet` answers; amounts are nanoTON as decimal strings. */
export interface EarningsSummary {
  balances: { pending: string; settled: string; inFlight: string; paid: string };
  payouts: { payoutId: string; amount: string; status: string; txHash: string | null; fee: string | null }[];
}

/** nanoTON (decimal string) → "1.234567891 TON", exact: no floating point touches money. */
export function formatTon(nano: string): string {
  const value = BigInt(nano);
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  const whole = abs / 1_000_000_000n;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${whole}${frac === '' ? '' : `.${frac}`} TON`;
}

export function mountEarnings(box: HTMLElement, coordinatorUrl: string, wallet: () => string | undefined, intervalMs = 3000): () => void {
  const render = (summary: EarningsSummary | null): void => {
    if (summary === null) {
      replace(
        box,
        h('h2', { id: 'earn-h' }, 'Earnings'),
        h('p', { class: 'note' }, 'Connect a wallet to earn: credits go to the wallet you prove.'),
      );
      return;
    }
    const { pending, settled, inFlight, paid } = summary.balances;
    replace(
      box,
      h('h2', { id: 'earn-h' }, 'Earnings'),
      h(
        'dl',
        {},
        h('dt', {}, 'Pending'),
        h('dd', { testid: 'earn-pending', 'data-nano': pending }, formatTon(pending), ' (inside the verification window)'),
        h('dt', {}, 'Settled'),
        h('dd', { testid: 'earn-settled', 'data-nano': settled }, formatTon(settled), ' (verified, waiting for the next payout)'),
        h('dt', {}, 'Being paid'),
        h('dd', { testid: 'earn-inflight', 'data-nano': inFlight }, formatTon(inFlight)),
        h('dt', {}, 'Paid'),
        h('dd', { testid: 'earn-paid', 'data-nano': paid }, formatTon(paid)),
      ),
      summary.payouts.length === 0
        ? h('p', { class: 'note' }, 'No payouts yet.')
        : h(
            'ul',
            { testid: 'earn-payouts' },
            ...summary.payouts.map((p) =>
              h(
                'li',
                { 'data-status': p.status },
                `${formatTon(p.amount)} — ${p.status}`,
                p.txHash === null ? '' : ` · transaction `,
                p.txHash === null ? '' : h('code', { testid: 'earn-tx' }, p.txHash),
              ),
            ),
          ),
    );
  };
  const refresh = async (): Promise<void> => {
    const address = wallet();
    if (address === undefined) return render(null);
    const response = await fetch(`${coordinatorUrl.replace(/\/+$/, '')}/v1/earnings/${encodeURIComponent(address)}`, { cache: 'no-store' });
    if (response.ok) render((await response.json()) as EarningsSummary);
  };
  render(null);
  const timer = setInterval(() => void refresh().catch(() => undefined), intervalMs);
  void refresh().catch(() => undefined);
  return () => clearInterval(timer);
}
