/** The money ledger: prices, double-entry transactions, derived balances and the book audit. */
export * from './accounts.ts';
export { checkBooks, walletBalances, type BookCheck, type BookProblem, type ContributorBalances } from './books.ts';
export * from './errors.ts';
export { Ledger, type CreditJobInput, type LedgerOptions, type PayoutConfirmInput, type PayoutIntentInput } from './ledger.ts';
export { defaultPrices, divRoundHalfUp, parsePriceList, price, PriceListSchema, type Price, type PriceList } from './prices.ts';
export type { LedgerEntry, LedgerTxn } from './txn.ts';
