/**
 * The money side from the configuration: ledger, deposits, billing, settlement and payouts on
 * the sandbox chain or TON through toncenter, the payout rules the network publishes, and what
 * a replica hands over or runs only where the singleton lock is.
 */
import type { Logger as Pino } from 'pino';
import type { HandoverHooks, Singletons } from '../../coordinator/cluster/replica.ts';
import { startMoney, type Money } from '../../coordinator/earnings/local.ts';
import { chargeDoneUncharged } from '../../coordinator/leases/restart.ts';
import type { NetworkInfoOptions } from '../../coordinator/network/network.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import type { Verification } from '../../coordinator/verification/service.ts';
import type { CoordinatorConfig } from '../config.ts';
import { lineCallback } from '../log.ts';

/** The environment the money wiring reads, from the checked configuration. */
function moneyEnv(config: CoordinatorConfig): Record<string, string | undefined> {
  const sandbox = config['ton.chain'] === 'sandbox';
  return {
    SPINNERET_TON_NETWORK: sandbox ? 'sandbox' : config.network,
    SPINNERET_TON_ENDPOINT: config['ton.endpoint'],
    SPINNERET_TON_API_KEY: config['ton.apiKey'],
    SPINNERET_HOT_WALLET_MNEMONIC: config['hotWallet.mnemonic'],
    SPINNERET_HOT_WALLET_MNEMONIC_FILE: config['hotWallet.mnemonicFile'],
    SPINNERET_DEPOSIT_ADDRESS: config['deposits.address'],
    SPINNERET_BUDGET_MEMO: config['deposits.budgetMemo'],
    SPINNERET_OPERATOR_TOKEN: config.operatorToken,
  };
}

/** Starts the money side; `singletons` false (replicas) leaves settlement, payouts and the deposit watcher to the lock holder. */
export async function startConfiguredMoney(
  config: CoordinatorConfig,
  store: SqlStore,
  verification: Verification,
  log: Pino,
  singletons: boolean,
): Promise<Money> {
  return startMoney({
    store,
    threshold: config['payouts.threshold'],
    windowMs: config['payouts.verificationWindow'],
    payoutIntervalMs: config['payouts.interval'],
    settleIntervalMs: config['payouts.settleInterval'],
    depositIntervalMs: config['deposits.interval'],
    checkBudgetLimit: config['deposits.checkBudgetLimit'],
    env: moneyEnv(config),
    log: lineCallback(log, 'money'),
    verification,
    singletons,
  });
}

/** The payout rules `GET /v1/network` publishes; the first round runs one interval after start. */
export function payoutRules(config: CoordinatorConfig): NonNullable<NetworkInfoOptions['payouts']> {
  return {
    thresholdNano: config['payouts.threshold'].toString(),
    verificationWindowMs: config['payouts.verificationWindow'],
    intervalMs: config['payouts.interval'],
    chain: config['ton.chain'] === 'sandbox' ? 'sandbox' : config.network === 'mainnet' ? 'mainnet' : 'testnet',
    firstAt: Date.now() + config['payouts.interval'],
  };
}

/** Replicas: what a stopped process left — unfinished jobs, orphaned reservations, delivered jobs never charged. */
export function moneyHandover(store: SqlStore, money: Money): HandoverHooks {
  return {
    released: (jobId: string, reason: string): void => money.billing.relay.ended(jobId, reason),
    money: {
      releaseOrphaned: (replicaId: string | null) => money.billing.releaseOrphaned(replicaId),
      chargeUncharged: async (replicaId: string | null) => {
        const charged = await chargeDoneUncharged({ store, billing: money.billing, onJobDone: money.onJobDone }, replicaId);
        await money.idle();
        return charged;
      },
    },
  };
}

/** What runs only on the replica holding the singleton lock: settlement with payouts, and the deposit watcher. */
export function moneySingletons(money: Money): Singletons {
  return {
    start: () => {
      money.earnings.start();
      money.deposits.start();
    },
    stop: () => {
      money.earnings.stop();
      money.deposits.stop();
    },
  };
}
