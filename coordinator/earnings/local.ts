/**
 * The money side of a coordinator, wired from configuration: the ledger on the coordinator's
 * database, the payout chain (an in-process @ton/sandbox chain by default, testnet or mainnet
 * by `SPINNERET_TON_NETWORK`), the hot wallet, the deposit watcher, billing (reservations,
 * the check budget, re-runs) and the earnings service that charges each finished job and
 * credits the contributor's proven wallet. On the sandbox chain a faucet sends test TON to
 * the deposit address, so a local network funds its keys with real (emulated) transfers.
 */
import { Address, toNano } from '@ton/core';
import { mnemonicNew } from '@ton/crypto';
import { Hono } from 'hono';
import { createBilling, type Billing } from '../billing/service.ts';
import { errorMessage } from '../log.ts';
import type { DepositChain } from '../deposits/chain.ts';
import { operatorRoutes } from '../deposits/routes.ts';
import { SandboxDepositChain, SandboxFaucet } from '../deposits/sandbox-chain.ts';
import { TonClientDepositChain } from '../deposits/ton-client-chain.ts';
import { createDepositWatcher, type DepositWatcher, type PollReport } from '../deposits/watcher.ts';
import type { JobDone } from '../leases/relay.ts';
import { Ledger } from '../ledger/ledger.ts';
import { createPayoutChain, payoutChainConfigFromEnv, publicKeyLookupFor } from '../payouts/config.ts';
import { HotWallet, loadHotWallet } from '../payouts/hot-wallet.ts';
import { SandboxChain } from '../payouts/sandbox-chain.ts';
import { TonClientChain } from '../payouts/ton-client-chain.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { isDatabaseUnavailable } from '../store/sql.ts';
import type { PublicKeyLookup } from '../wallets/public-key-lookup.ts';
import type { Verification } from '../verification/service.ts';
import { createEarnings, type Earnings } from './service.ts';

/** The comment that funds the check budget when `SPINNERET_BUDGET_MEMO` is not set. */
export const DEFAULT_BUDGET_MEMO = 'spinneret:check-budget';

export interface MoneyOptions {
  store: SqlStore;
  /** Smallest settled balance paid out, nanoTON. */
  threshold: bigint;
  /** Verification window before a credit settles, ms. */
  windowMs: number;
  payoutIntervalMs: number;
  settleIntervalMs: number;
  /** How often the deposit address is read, ms. Default 10 s. */
  depositIntervalMs?: number;
  /** Most nanoTON the check budget may have reserved for checks in flight at once. Default 10 TON. */
  checkBudgetLimit?: bigint;
  env?: Readonly<Record<string, string | undefined>>;
  log?: (line: string) => void;
  /**
   * Verified work: credits wait for its verdict, failed checks void them into
   * `network:penalties`, and every credit gets a signed receipt. Check jobs (canaries,
   * replicas, tie-breaks, re-runs) are credited like any job, so a contributor cannot tell
   * them apart, and paid from the network's check budget.
   */
  verification?: Verification;
  /**
   * Start settlement, payouts and the deposit watcher's timers now (default true). Replicas
   * pass false and start them on the replica holding the singleton lock (coordinator/cluster/).
   */
  singletons?: boolean;
}

export interface Money {
  earnings: Earnings;
  /** For `createCoordinator({ billing })`: reservations, 402s, the check budget, re-runs. */
  billing: Billing;
  deposits: DepositWatcher;
  /** For `createCoordinator({ onJobDone })`: charges the job and credits the contributor's wallet, if any. */
  readonly onJobDone: (done: JobDone) => void;
  /** For `createCoordinator({ publicRoutes })`: earnings, and the operator's routes when `SPINNERET_OPERATOR_TOKEN` is set. */
  routes: Hono;
  /** Which chain payouts and deposits are on, in words. */
  chainName: string;
  hotWalletAddress: string;
  /** Where requesters send TON: the hot wallet unless `SPINNERET_DEPOSIT_ADDRESS` names another address. */
  depositAddress: string;
  /** The comment that funds the check budget. */
  budgetMemo: string;
  /** For `createCoordinator({ walletPublicKeys })`: wallet keys read from the payout chain. */
  publicKeys: PublicKeyLookup | undefined;
  /** Whether {@link Money.fund} works: the chain is the local sandbox. */
  hasFaucet: boolean;
  /**
   * The local faucet (sandbox chain only): sends `amount` nanoTON of test money to the deposit
   * address with `memo` as its comment, a real transfer on the emulated chain, and waits until
   * the watcher booked it. Throws on a real chain.
   */
  fund(memo: string | null, amount: bigint): Promise<PollReport>;
  /** nanoTON balance of an address on the payout chain (the hot wallet's, for `/metrics`). */
  balanceOf(address: Address): Promise<bigint>;
  /** Stops the timers (settlement, payouts, deposits, stale reservations). */
  stop(): void;
  /** Resolves when every finished job handed to {@link Money.onJobDone} so far is charged and credited. */
  idle(): Promise<void>;
}

export async function startMoney(options: MoneyOptions): Promise<Money> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const config = payoutChainConfigFromEnv(env);
  // The sandbox chain lives and dies with this process, so a fresh key each start is safe;
  // a real chain needs the operator's key from the environment or a secret file.
  const hotWallet =
    config.kind === 'sandbox' &&
    env['SPINNERET_HOT_WALLET_MNEMONIC'] === undefined &&
    env['SPINNERET_HOT_WALLET_MNEMONIC_FILE'] === undefined
      ? await HotWallet.fromMnemonic(await mnemonicNew())
      : await loadHotWallet({ env });
  const chain = await createPayoutChain(config, hotWallet);
  const { store } = options;
  const ledger = new Ledger(store.db);
  const depositAddress =
    env['SPINNERET_DEPOSIT_ADDRESS'] === undefined ? hotWallet.address : Address.parse(env['SPINNERET_DEPOSIT_ADDRESS']);
  const budgetMemo = env['SPINNERET_BUDGET_MEMO'] ?? DEFAULT_BUDGET_MEMO;
  const shownDeposit = depositAddress.toString({ testOnly: config.kind === 'sandbox' });
  const billing = createBilling({
    db: store.db,
    ledger,
    store,
    depositAddress: shownDeposit,
    budgetLimit: options.checkBudgetLimit ?? toNano('10'),
    log: (message, err) => log(`billing: ${message}${err === undefined ? '' : `: ${errorMessage(err)}`}`),
  });
  const depositChain: DepositChain =
    chain instanceof SandboxChain
      ? new SandboxDepositChain(chain.blockchain)
      : chain instanceof TonClientChain
        ? new TonClientDepositChain(chain.client)
        : unsupported();
  const deposits = createDepositWatcher({
    db: store.db,
    ledger,
    store,
    chain: depositChain,
    address: depositAddress,
    budgetMemo,
    intervalMs: options.depositIntervalMs ?? 10_000,
    onBudgetDeposit: () => void billing.refreshBudget().catch(() => undefined),
    log: (message, err) => log(`deposits: ${message}${err === undefined ? '' : `: ${errorMessage(err)}`}`),
  });
  // The first read sets the cursor at the address's latest transaction: from here on, every deposit is booked.
  await deposits.poll();
  const { verification } = options;
  const earnings = createEarnings({
    log: (message, err) => log(`earnings: ${message}${err === undefined ? '' : `: ${errorMessage(err)}`}`),
    db: store.db,
    ledger,
    chain,
    hotWallet,
    threshold: options.threshold,
    windowMs: options.windowMs,
    payoutIntervalMs: options.payoutIntervalMs,
    settleIntervalMs: options.settleIntervalMs,
    ...(verification === undefined ? {} : { isVerified: (jobId: string) => verification.isVerified(jobId) }),
  });
  verification?.setVoider(async (jobId, reason) => void (await earnings.voidNow(jobId, reason)));
  // A result the requester could not open is run again at no charge, paid by the check budget.
  verification?.setRerunner((jobId) => billing.createRerun(jobId));
  await billing.start();
  if (options.singletons !== false) {
    earnings.start();
    deposits.start();
  }
  const faucet = chain instanceof SandboxChain ? new SandboxFaucet(chain.blockchain, depositAddress) : null;
  const operatorToken = env['SPINNERET_OPERATOR_TOKEN'];
  const routes = new Hono().route('/', earnings.routes());
  if (operatorToken !== undefined && operatorToken.length >= 16) {
    routes.route(
      '/',
      operatorRoutes({
        token: operatorToken,
        watcher: deposits,
        billing,
        ledger,
        keyExists: async (id) => (await store.db.query('SELECT 1 FROM api_keys WHERE id = $1', [id])).rows.length > 0,
      }),
    );
  }
  const inFlight = new Set<Promise<void>>();
  const chainName = config.kind === 'sandbox' ? 'the local @ton/sandbox chain (emulated TON)' : config.endpoint;
  return {
    earnings,
    billing,
    deposits,
    routes,
    chainName,
    depositAddress: shownDeposit,
    budgetMemo,
    publicKeys: publicKeyLookupFor(chain, config.kind === 'sandbox' ? 'the local sandbox chain' : `TON ${env['SPINNERET_TON_NETWORK']}`),
    hotWalletAddress: hotWallet.address.toString(),
    hasFaucet: faucet !== null,
    async fund(memo, amount) {
      if (faucet === null) throw new Error('The faucet only exists on the local sandbox chain; on testnet or mainnet, send real TON.');
      await faucet.send(memo, amount);
      return deposits.poll();
    },
    balanceOf: (address) => chain.getBalance(address),
    stop() {
      earnings.stop();
      deposits.stop();
      billing.stop();
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    onJobDone(done) {
      const charge = async (): Promise<void> => {
        // A check's budget reservation is written asynchronously; charge it after.
        if (done.role !== 'job') await billing.whenReserved(done.jobId);
        const contributor = await store.getContributor(done.contributorId);
        const wallet = contributor?.wallet ?? null;
        const outcome = await earnings.onJobDone({ jobId: done.jobId, wallet, model: done.model, usage: done.usage });
        await billing.recordDone(done, outcome.credited || outcome.reason === 'no-wallet' ? outcome.gross : null);
        if (!outcome.credited && outcome.reason !== 'no-wallet') log(`earnings: job ${done.jobId} not credited: ${outcome.message}`);
        if (outcome.credited && !outcome.replayed && verification !== undefined && wallet !== null) {
          await verification.receipt({
            jobId: done.jobId,
            contributorId: done.contributorId,
            wallet,
            model: done.model,
            usage: done.usage,
            amountNano: outcome.amount,
            at: Date.now(),
          });
        }
      };
      // Every step is idempotent (the ledger's keys, ON CONFLICT rows): while the database is
      // unreachable the whole charge is tried again, with backoff, for up to CHARGE_RETRY_MS, so a
      // job delivered during a database restart is still paid for, once.
      const task = (async () => {
        const until = Date.now() + CHARGE_RETRY_MS;
        for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
          try {
            return await charge();
          } catch (err) {
            if (!isDatabaseUnavailable(err) || Date.now() + delay > until) throw err;
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
        }
      })()
        .catch((err: unknown) => log(`earnings: crediting job ${done.jobId} failed: ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
    },
  };
}

/** How long a finished job's charge is retried while the database is unreachable, ms. */
const CHARGE_RETRY_MS = 10 * 60_000;

function unsupported(): never {
  throw new Error('deposits need the sandbox chain or a TonClient chain');
}
