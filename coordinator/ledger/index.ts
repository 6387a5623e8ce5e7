/** The money ledger: prices, double-entry transactions, derived balances and the book audit. */
export * from './accounts.ts';
export {
  bookTotals,
  checkBooks,
  walletBalances,
  type BookCheck,
  type BookProblem,
  type BookTotals,
  type ContributorBalances,
} from './books.ts';
export * from './errors.ts';
export {
  Ledger,
  type ChargeJobInput,
  type DepositInput,
  type DepositTarget,
  type LedgerOptions,
  type PayerBalances,
  type PayoutConfirmInput,
  type PayoutIntentInput,
  type ReserveInput,
} from './ledger.ts';
export { defaultPrices, divRoundHalfUp, parsePriceList, price, PriceListSchema, type Price, type PriceList } from './prices.ts';
export type { LedgerEntry, LedgerTxn } from './txn.ts';
