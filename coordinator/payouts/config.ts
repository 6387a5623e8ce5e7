/** Picks the payout chain from configuration: the sandbox by default, TON by endpoint. */
import { toNano } from '@ton/core';
import { tonClientPublicKeyLookup, type PublicKeyLookup } from '../wallets/public-key-lookup.ts';
import type { Chain } from './chain.ts';
import type { HotWallet } from './hot-wallet.ts';
import { SandboxChain } from './sandbox-chain.ts';
import { TonClientChain } from './ton-client-chain.ts';

/** Which chain payouts go to. */
export type PayoutChainConfig =
  | {
      readonly kind: 'sandbox';
      /** nanoTON the sandbox faucet gives the hot wallet at start. */
      readonly hotWalletFunding: bigint;
    }
  | { readonly kind: 'ton'; readonly endpoint: string; readonly apiKey?: string };

const ENDPOINTS = {
  testnet: 'https://testnet.toncenter.com/api/v2/jsonRPC',
  mainnet: 'https://toncenter.com/api/v2/jsonRPC',
} as const;

/**
 * Reads `SPINNERET_TON_NETWORK` (`sandbox`, the default; `testnet`; `mainnet`),
 * `SPINNERET_TON_ENDPOINT` (overrides the network's toncenter URL) and
 * `SPINNERET_TON_API_KEY`.
 */
export function payoutChainConfigFromEnv(env: Readonly<Record<string, string | undefined>>): PayoutChainConfig {
  const network = env['SPINNERET_TON_NETWORK'] ?? 'sandbox';
  if (network === 'sandbox') return { kind: 'sandbox', hotWalletFunding: toNano('10000') };
  if (network !== 'testnet' && network !== 'mainnet') {
    throw new Error(`SPINNERET_TON_NETWORK must be sandbox, testnet or mainnet, not ${JSON.stringify(network)}`);
  }
  const apiKey = env['SPINNERET_TON_API_KEY'];
  return {
    kind: 'ton',
    endpoint: env['SPINNERET_TON_ENDPOINT'] ?? ENDPOINTS[network],
    ...(apiKey === undefined ? {} : { apiKey }),
  };
}

/** Builds the configured chain; a sandbox chain starts with the hot wallet funded. */
export async function createPayoutChain(config: PayoutChainConfig, hotWallet: HotWallet): Promise<Chain> {
  switch (config.kind) {
    case 'sandbox':
      return SandboxChain.create({ fund: [{ address: hotWallet.address, amount: config.hotWalletFunding }] });
    case 'ton':
      return new TonClientChain(config);
  }
}

/**
 * Where `ton_proof` verification reads the keys of wallets it does not know: the chain payouts
 * go to, so a wallet is proven on the network it is paid on. Undefined for any other `Chain`.
 */
export function publicKeyLookupFor(chain: Chain, chainName: string): PublicKeyLookup | undefined {
  if (chain instanceof SandboxChain) return chain.publicKeys(chainName);
  if (chain instanceof TonClientChain) return tonClientPublicKeyLookup(chain.client, chainName);
  return undefined;
}
