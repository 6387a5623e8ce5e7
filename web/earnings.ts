/**
 * Earnings and activity: polls the proven wallet's balances (`GET /v1/earnings/:wallet`), this
 * device's signed receipts and its verification record, puts them in the page state and the
 * history, and draws the Activity section in words: where the money is, each payout with its
 * transaction (copy, explorer), the jobs with their receipts, and how the network checks this
 * device. Routes the coordinator does not have (404) leave their part out.
 */
import type { EarningsSummary, ReceiptsAnswer, VerificationReport } from '../protocol/answers.ts';
import { type CoordinatorClient, CoordinatorError } from './api.ts';
import { h, replace, tr } from './dom.ts';
import type { History, SeenReceipt } from './history.ts';
import { formatAgo, formatDateTime, formatTon } from './i18n/format.ts';
import { formatNumber, onLanguage, t, tp } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';

export interface ActivityOptions {
  coordinator: CoordinatorClient;
  store: Store<PageState>;
  /** The proven wallet's raw address, if any. */
  wallet: () => string | undefined;
  /** This device's id at the coordinator, once it has one. */
  contributorId: () => string | null;
  history: History;
  intervalMs?: number;
}

/** Payout states with words of their own (coordinator/payouts/book.ts); others are said as "unknown". */
const PAYOUT_STATUSES = ['pending', 'paid', 'failed'];

export function toSeen(answer: ReceiptsAnswer): SeenReceipt[] {
  return answer.receipts.map(({ receipt: r }) => ({
    jobId: r.jobId,
    model: r.model,
    tokens: r.usage.promptTokens + r.usage.completionTokens,
    amountNano: r.amountNano,
    at: r.at,
  }));
}

/** `1a2b3c…9f0e`. */
const shortHash = (hash: string): string => (hash.length <= 14 ? hash : `${hash.slice(0, 8)}…${hash.slice(-6)}`);

function explorerTx(chain: string | undefined, hash: string): string | null {
  if (chain === 'testnet') return `https://testnet.tonviewer.com/transaction/${hash}`;
  if (chain === 'mainnet') return `https://tonviewer.com/transaction/${hash}`;
  return null;
}

export function mountActivity(box: HTMLElement, options: ActivityOptions): () => void {
  const { store, history } = options;
  const { coordinator } = options;
  const balances = h('div', { testid: 'earn-balances' });
  const payouts = h('div', { testid: 'earn-payouts-box' });
  const receipts = h('div', { testid: 'earn-receipts-box' });
  const verification = h('div', { testid: 'verification' });
  replace(
    box,
    h('h3', {}, tr('earn.balancesTitle')),
    balances,
    h('h3', {}, tr('earn.payoutsTitle')),
    payouts,
    h('h3', {}, tr('earn.receiptsTitle')),
    receipts,
    h('h3', {}, tr('earn.verificationTitle')),
    verification,
  );
  let record: VerificationReport | null | 'missing' = null;
  let receiptsMissing = false;

  const drawBalances = (summary: EarningsSummary | null): void => {
    if (summary === null) return replace(balances, h('p', { class: 'note' }, tr('earn.connect')));
    const { pending, settled, inFlight, paid } = summary.balances;
    const row = (id: string, label: string, nano: string, note: string) => [
      h('dt', {}, tr(label)),
      h('dd', { testid: id, 'data-nano': nano }, formatTon(nano, 'exact'), h('span', { class: 'note' }, ' — ', tr(note))),
    ];
    replace(
      balances,
      h(
        'dl',
        { class: 'pairs' },
        ...row('earn-pending', 'earn.pending', pending, 'earn.pendingNote'),
        ...row('earn-settled', 'earn.settled', settled, 'earn.settledNote'),
        ...row('earn-inflight', 'earn.inFlight', inFlight, 'earn.inFlightNote'),
        ...row('earn-paid', 'earn.paid', paid, 'earn.paidNote'),
        ...row('earn-verified', 'earn.verified', (BigInt(settled) + BigInt(inFlight) + BigInt(paid)).toString(), 'earn.verifiedNote'),
      ),
    );
  };

  const drawPayouts = (summary: EarningsSummary | null, chain: string | undefined): void => {
    if (summary === null || summary.payouts.length === 0) return replace(payouts, h('p', { class: 'note' }, tr('earn.noPayouts')));
    replace(
      payouts,
      h(
        'ul',
        { testid: 'earn-payouts', class: 'plain' },
        ...summary.payouts.slice(0, 10).map((p) => {
          const hash = p.txHash;
          const copy = hash === null ? null : h('button', { type: 'button', class: 'small', testid: 'earn-tx-copy' }, tr('wallet.copy'));
          copy?.addEventListener(
            'click',
            () =>
              void navigator.clipboard?.writeText(hash ?? '').then(
                () => replace(copy, tr('wallet.copied')),
                () => undefined,
              ),
          );
          const link = hash === null ? null : explorerTx(chain, hash);
          return h(
            'li',
            { 'data-status': p.status },
            tr('earn.payout', () => ({
              amount: formatTon(p.amount, 'exact'),
              status: t(`earn.payoutStatus_${PAYOUT_STATUSES.includes(p.status) ? p.status : 'unknown'}`),
            })),
            p.updatedAt === undefined ? null : ` · ${formatDateTime(p.updatedAt)}`,
            hash === null ? null : h('br'),
            hash === null ? null : tr('earn.transaction'),
            hash === null ? null : ' ',
            hash === null ? null : h('code', { testid: 'earn-tx', title: hash, 'data-hash': hash }, shortHash(hash)),
            copy === null ? null : ' ',
            copy,
            hash === null ? null : ' ',
            hash === null
              ? null
              : link === null
                ? h('span', { class: 'note' }, tr('earn.localChain'))
                : h('a', { href: link, rel: 'noopener noreferrer', target: '_blank' }, tr('earn.explorer')),
          );
        }),
      ),
    );
  };

  const drawReceipts = (): void => {
    if (receiptsMissing) return replace(receipts, h('p', { class: 'note' }, tr('earn.receiptsMissing')));
    const seen = history.data.receipts;
    const now = store.get().now;
    replace(
      receipts,
      seen.length === 0
        ? h('p', { class: 'note' }, tr('earn.noReceipts'))
        : h(
            'ul',
            { testid: 'earn-receipts', 'data-count': seen.length, class: 'plain' },
            ...seen
              .slice(-10)
              .reverse()
              .map((r) =>
                h(
                  'li',
                  { 'data-job': r.jobId },
                  tr('earn.receipt', () => ({
                    when: formatAgo(r.at, now),
                    model: r.model,
                    tokens: tp('earn.tokens', r.tokens),
                    amount: formatTon(r.amountNano, 'exact'),
                  })),
                ),
              ),
          ),
      h('p', { class: 'note' }, tr('earn.receiptsNote')),
    );
  };

  const drawVerification = (): void => {
    const v = record;
    if (v === 'missing') return replace(verification, h('p', { class: 'note' }, tr('earn.verificationMissing')));
    if (v === null) return replace(verification, h('p', { class: 'note' }, tr('earn.verificationNotYet')));
    verification.dataset['quarantined'] = String(v.quarantined);
    replace(
      verification,
      h('p', {}, h('strong', {}, tr(v.quarantined ? 'earn.quarantined' : 'earn.inGoodStanding'))),
      h('p', { class: 'note' }, tr('earn.reputation', { score: formatNumber(v.reputation.score, { maximumFractionDigits: 2 }) })),
      h('p', { class: 'note' }, tr('earn.canaries', { passed: v.canaries.passed, failed: v.canaries.failed })),
      h(
        'p',
        { class: 'note' },
        v.replication.checked === 0
          ? tr('earn.replicationNone')
          : tr('earn.replication', { checked: v.replication.checked, agreed: v.replication.agreed }),
      ),
      h('p', { class: 'note' }, tr('earn.verificationExplain')),
      v.records.length === 0
        ? null
        : h(
            'ul',
            { testid: 'verification-records', class: 'plain' },
            ...v.records
              .slice(0, 10)
              .map((r) =>
                h('li', {}, tr('earn.record', { when: formatDateTime(r.at), job: r.jobId ?? '—', kind: r.kind, reason: r.reason })),
              ),
          ),
    );
  };

  /** The answer, 'missing' on 404 (route not offered), or null on other refusals; throws when the coordinator is unreachable. */
  const read = async <T>(ask: () => Promise<T>): Promise<T | 'missing' | null> => {
    try {
      return await ask();
    } catch (err) {
      if (!(err instanceof CoordinatorError) || err.reason === 'unreachable') throw err;
      return err.status === 404 ? 'missing' : null;
    }
  };

  const refresh = async (): Promise<void> => {
    const address = options.wallet();
    if (address === undefined) store.set({ earnings: null });
    else {
      const summary = await read(() => coordinator.earnings(address));
      if (summary !== null && summary !== 'missing') store.set({ earnings: summary });
    }
    const id = options.contributorId();
    if (id === null) return;
    const [answer, verdicts] = await Promise.all([read(() => coordinator.receipts(id, 50)), read(() => coordinator.verification(id))]);
    receiptsMissing = answer === 'missing';
    if (answer !== null && answer !== 'missing') history.addReceipts(toSeen(answer));
    if (verdicts !== null) record = verdicts;
    drawReceipts();
    drawVerification();
  };
  const draw = (state: Readonly<PageState>): void => {
    drawBalances(state.earnings);
    drawPayouts(state.earnings, state.network?.payouts?.chain);
  };
  store.subscribe(draw);
  onLanguage(() => (draw(store.get()), drawReceipts(), drawVerification()));
  drawReceipts();
  drawVerification();
  const timer = setInterval(() => void refresh().catch(() => undefined), options.intervalMs ?? 3000);
  void refresh().catch(() => undefined);
  return () => clearInterval(timer);
}
