/**
 * The "Earnings" card: pending, settled and paid nanoTON for the proven wallet, each payout's
 * transaction, this device's signed receipts, and its verification record in words. Routes
 * the coordinator does not have (404) leave their part out.
 */
import { h, replace, tr } from './dom.ts';
import type { History, SeenReceipt } from './history.ts';
import { formatNumber } from './i18n/index.ts';

/** What `GET /v1/earnings/:wallet` answers; amounts are nanoTON as decimal strings. */
export interface EarningsSummary {
  balances: { pending: string; settled: string; inFlight: string; paid: string };
  payouts: { payoutId: string; amount: string; status: string; txHash: string | null; fee: string | null }[];
}

/** What `GET /v1/contributors/:id/receipts` answers. */
export interface ReceiptsAnswer {
  publicKey: string;
  receipts: {
    receipt: {
      jobId: string;
      model: string;
      usage?: { promptTokens?: number; completionTokens?: number };
      amountNano: string;
      at: number | string;
    };
    signature: string;
  }[];
}

/** What `GET /v1/contributors/:id/verification` answers. */
export interface VerificationAnswer {
  reputation: { score: number; clean: number; failed: number };
  quarantined: boolean;
  canaries: { passed: number; failed: number };
  replication: { checked: number; agreed: number; rate: number };
  records: { at: number | string; jobId: string; kind: string; reason: string }[];
}

export interface EarningsOptions {
  coordinatorUrl: string;
  /** The proven wallet's raw address, if any. */
  wallet: () => string | undefined;
  /** This device's id at the coordinator, once it has one. */
  contributorId: () => string | null;
  history: History;
  /** Block explorer for a transaction hash; null where the chain has none (the local sandbox). */
  explorer?: ((txHash: string) => string) | null;
  intervalMs?: number;
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

const toMs = (at: number | string): number => (typeof at === 'number' ? at : Date.parse(at));

export function toSeen(answer: ReceiptsAnswer): SeenReceipt[] {
  return answer.receipts.map(({ receipt: r }) => ({
    jobId: r.jobId,
    model: r.model,
    tokens: (r.usage?.promptTokens ?? 0) + (r.usage?.completionTokens ?? 0),
    amountNano: r.amountNano,
    at: toMs(r.at),
  }));
}

export function mountEarnings(box: HTMLElement, options: EarningsOptions): () => void {
  const base = options.coordinatorUrl.replace(/\/+$/, '');
  const balances = h('div', { testid: 'earn-balances' });
  const payouts = h('div', {});
  const receipts = h('div', { testid: 'earn-receipts-box' });
  const verification = h('div', { testid: 'verification' });
  replace(
    box,
    h('h2', { id: 'earn-h' }, tr('earn.title')),
    balances,
    payouts,
    h('h3', {}, tr('earn.receiptsTitle')),
    receipts,
    h('h3', {}, tr('earn.verificationTitle')),
    verification,
  );

  const renderBalances = (summary: EarningsSummary | null): void => {
    if (summary === null) {
      replace(balances, h('p', { class: 'note' }, tr('earn.connect')));
      replace(payouts);
      return;
    }
    const { pending, settled, inFlight, paid } = summary.balances;
    const row = (id: string, label: string, nano: string, note: string | null) => [
      h('dt', {}, tr(label)),
      h('dd', { testid: id, 'data-nano': nano }, formatTon(nano), note === null ? null : ' ', note === null ? null : tr(note)),
    ];
    replace(
      balances,
      h(
        'dl',
        {},
        ...row('earn-pending', 'earn.pending', pending, 'earn.pendingNote'),
        ...row('earn-settled', 'earn.settled', settled, 'earn.settledNote'),
        ...row('earn-inflight', 'earn.inFlight', inFlight, null),
        ...row('earn-paid', 'earn.paid', paid, 'earn.paidNote'),
        ...row('earn-verified', 'earn.verified', (BigInt(settled) + BigInt(inFlight) + BigInt(paid)).toString(), 'earn.verifiedNote'),
      ),
    );
    replace(
      payouts,
      summary.payouts.length === 0
        ? h('p', { class: 'note' }, tr('earn.noPayouts'))
        : h(
            'ul',
            { testid: 'earn-payouts' },
            ...summary.payouts.map((p) => {
              const hash = p.txHash === null ? null : h('code', { testid: 'earn-tx' }, p.txHash);
              const link = options.explorer ?? null;
              return h(
                'li',
                { 'data-status': p.status },
                tr('earn.payout', { amount: formatTon(p.amount), status: p.status }),
                hash === null ? null : ' · ',
                hash === null ? null : tr('earn.transaction'),
                hash === null ? null : ' ',
                hash === null ? null : link === null || p.txHash === null ? hash : h('a', { href: link(p.txHash), rel: 'noopener' }, hash),
              );
            }),
          ),
    );
  };

  const renderReceipts = (): void => {
    const seen = options.history.data.receipts;
    replace(
      receipts,
      seen.length === 0
        ? h('p', { class: 'note' }, tr('earn.noReceipts'))
        : h(
            'ul',
            { testid: 'earn-receipts', 'data-count': seen.length },
            ...seen
              .slice(-10)
              .reverse()
              .map((r) =>
                h(
                  'li',
                  { 'data-job': r.jobId },
                  tr('earn.receipt', {
                    when: new Date(r.at).toLocaleTimeString(),
                    model: r.model,
                    tokens: r.tokens,
                    amount: formatTon(r.amountNano),
                  }),
                ),
              ),
          ),
      h('p', { class: 'note' }, tr('earn.receiptsNote')),
    );
  };

  const renderVerification = (v: VerificationAnswer | null | 'missing'): void => {
    if (v === 'missing') return replace(verification, h('p', { class: 'note' }, tr('earn.verificationMissing')));
    if (v === null) return replace(verification, h('p', { class: 'note' }, tr('earn.verificationNotYet')));
    verification.dataset['quarantined'] = String(v.quarantined);
    replace(
      verification,
      h(
        'p',
        {},
        tr(v.quarantined ? 'earn.quarantined' : 'earn.inGoodStanding', {
          score: formatNumber(v.reputation.score, { maximumFractionDigits: 2 }),
          clean: v.reputation.clean,
          failed: v.reputation.failed,
        }),
      ),
      h(
        'p',
        { class: 'note' },
        tr('earn.canaries', { passed: v.canaries.passed, failed: v.canaries.failed }),
        ' ',
        tr('earn.replication', {
          checked: v.replication.checked,
          agreed: v.replication.agreed,
          rate: formatNumber(v.replication.rate * 100, { maximumFractionDigits: 1 }),
        }),
      ),
      h('p', { class: 'note' }, tr('earn.verificationExplain')),
      v.records.length === 0
        ? null
        : h(
            'ul',
            { testid: 'verification-records' },
            ...v.records
              .slice(-10)
              .reverse()
              .map((r) =>
                h(
                  'li',
                  {},
                  tr('earn.record', { when: new Date(toMs(r.at)).toLocaleString(), job: r.jobId, kind: r.kind, reason: r.reason }),
                ),
              ),
          ),
    );
  };

  /** The parsed body, 'missing' on 404 (route not offered), or null on other failures. */
  const getJson = async <T>(path: string): Promise<T | 'missing' | null> => {
    const response = await fetch(`${base}${path}`, { cache: 'no-store' });
    if (response.status === 404) return 'missing';
    return response.ok ? ((await response.json()) as T) : null;
  };

  const refresh = async (): Promise<void> => {
    const address = options.wallet();
    if (address === undefined) renderBalances(null);
    else {
      const summary = await getJson<EarningsSummary>(`/v1/earnings/${encodeURIComponent(address)}`);
      if (summary !== null && summary !== 'missing') renderBalances(summary);
    }
    const id = options.contributorId();
    if (id === null) return;
    const [answer, record] = await Promise.all([
      getJson<ReceiptsAnswer>(`/v1/contributors/${encodeURIComponent(id)}/receipts?limit=50`),
      getJson<VerificationAnswer>(`/v1/contributors/${encodeURIComponent(id)}/verification`),
    ]);
    if (answer === 'missing') replace(receipts, h('p', { class: 'note' }, tr('earn.receiptsMissing')));
    else if (answer !== null) {
      options.history.addReceipts(toSeen(answer));
      renderReceipts();
    }
    if (record !== null) renderVerification(record);
  };
  renderBalances(null);
  renderReceipts();
  renderVerification(null);
  const timer = setInterval(() => void refresh().catch(() => undefined), options.intervalMs ?? 3000);
  void refresh().catch(() => undefined);
  return () => clearInterval(timer);
}
