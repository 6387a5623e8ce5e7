/**
 * The money side of a coordinator, wired from configuration: the ledger on the coordinator's
 * database, the payout chain (an in-process @ton/sandbox chain by default, testnet or mainnet
 * by `SPINNERET_TON_NETWORK`), the hot wallet, and the earnings service that credits each
 * finished job to the contributor's proven wallet.
 */
import { mnemonicNew } from '@ton/crypto';
import type { Hono } from 'hono';
import type { JobDone } from '../leases/relay.ts';
import { Ledger } from '../ledger/ledger.ts';
import { createPayoutChain, payoutChainConfigFromEnv, publicKeyLookupFor } from '../payouts/config.ts';
import { HotWallet, loadHotWallet } from '../payouts/hot-wallet.ts';
import type { SqlStore } from '../store/sql-store.ts';
import type { PublicKeyLookup } from '../wallets/public-key-lookup.ts';
import { NETWORK_CHECKS } from '../verification/canary-runner.ts';
import type { Verification } from '../verification/service.ts';
import { createEarnings, type Earnings } from './service.ts';

export interface MoneyOptions {
  store: SqlStore;
  /** Smallest settled balance paid out, nanoTON. */
  threshold: bigint;
  /** Verification window before a credit settles, ms. */
  windowMs: number;
  payoutIntervalMs: number;
  settleIntervalMs: number;
  env?: Readonly<Record<string, string | undefined>>;
  log?: (line: string) => void;
  /**
   * Verified work: credits wait for its verdict, failed checks void them, and every credit
   * gets a signed receipt. Check jobs (canaries, replicas, tie-breaks) are credited like any
   * job, so a contributor cannot tell them apart, and billed to the network's own requester
   * account `requester:network:checks`, which the network's commission pays for.
   */
  verification?: Verification;
}

export interface Money {
  earnings: Earnings;
  /** For `createCoordinator({ onJobDone })`: credits the job to the contributor's wallet, if any. */
  onJobDone(done: JobDone): void;
  /** For `createCoordinator({ publicRoutes })`. */
  routes: Hono;
  /** Which chain payouts go to, in words. */
  chainName: string;
  hotWalletAddress: string;
  /** For `createCoordinator({ walletPublicKeys })`: wallet keys read from the payout chain. */
  publicKeys: PublicKeyLookup | undefined;
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
  const earnings = createEarnings({
    db: store.db,
    ledger,
    chain,
    hotWallet,
    threshold: options.threshold,
    windowMs: options.windowMs,
    payoutIntervalMs: options.payoutIntervalMs,
    settleIntervalMs: options.settleIntervalMs,
    ...(options.verification === undefined ? {} : { isVerified: options.verification.isVerified }),
  });
  const { verification } = options;
  verification?.setVoider(async (jobId, reason) => void (await earnings.voidNow(jobId, reason)));
  earnings.start();
  const chainName = config.kind === 'sandbox' ? 'the local @ton/sandbox chain (emulated TON)' : config.endpoint;
  return {
    earnings,
    routes: earnings.routes(),
    chainName,
    publicKeys: publicKeyLookupFor(chain, config.kind === 'sandbox' ? 'the local sandbox chain' : `TON ${env['SPINNERET_TON_NETWORK']}`),
    hotWalletAddress: hotWallet.address.toString(),
    onJobDone(done) {
      void (async () => {
        const contributor = await store.getContributor(done.contributorId);
        const wallet = contributor?.wallet ?? null;
        const outcome = await earnings.onJobDone({
          jobId: done.jobId,
          apiKeyId: done.role === 'job' ? done.apiKeyId : NETWORK_CHECKS,
          wallet,
          model: done.model,
          usage: done.usage,
        });
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
      })().catch((err: unknown) =>
        log(`earnings: crediting job ${done.jobId} failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    },
  };
}
