/**
 * Test support (not used by the app) for canary tests on the real coordinator with its money
 * side (PGlite): a network with checks on (by default every job gets a canary), a contributor loop over WebSockets
 * with a payout wallet, and a manifest with a file off its SHA-256 pin.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import type { JobKind } from '../protocol/manifest.ts';
import type { KnownAnswer } from '../coordinator/verification/canaries.ts';
import type { Verification } from '../coordinator/verification/service.ts';
import { waitFor } from '../coordinator/store/testing.ts';
import { Contributor, type ContributorRuntime } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { type PaidNetwork, startPaidNetwork } from './billing.ts';
import { testWallet } from './verification.ts';

/** Verification settings of a checked network. */
export type CheckPolicy = NonNullable<Parameters<typeof startPaidNetwork>[1]>['policy'];

/** Every job gets a canary; nothing is replicated; one failed check quarantines. */
export const CANARY_EVERY_JOB = {
  canaryRate: 1,
  probationCanaryRate: 1,
  baseReplicationRate: 0,
  minReplicationRate: 0,
  quarantineAfter: 1,
  benchFirstFailure: false,
};

/**
 * A paid network with checks on, by `policy` (default: every job gets a canary, from
 * `knownAnswers` when given); its check budget funded with 10 TON, as `npm start` funds it.
 */
export async function startCheckedNetwork(options: { policy?: CheckPolicy; knownAnswers?: KnownAnswer[] } = {}): Promise<PaidNetwork> {
  const { policy = CANARY_EVERY_JOB, knownAnswers } = options;
  const net = await startPaidNetwork('PGlite', { policy, ...(knownAnswers !== undefined && { knownAnswers }) });
  await net.money.fund(net.money.budgetMemo, toNano('10'));
  // The budget's view is refreshed as its deposit is booked; wait for it, or the first check may be refused.
  await net.money.billing.refreshBudget();
  return net;
}

/** A contributor loop on `net` over `runtime`, allowing `consent`; not started. */
export async function newContributor(net: PaidNetwork, runtime: ContributorRuntime, consent: JobKind[]): Promise<Contributor> {
  return new Contributor({
    coordinatorUrl: `${net.url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent,
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
  });
}

/** Starts `contributor` and binds a fresh payout wallet once it is welcomed: its id and wallet. */
export async function welcome(net: PaidNetwork, contributor: Contributor): Promise<{ id: string; wallet: string }> {
  contributor.start();
  await waitFor(async () => contributor.status().contributorId !== null);
  const id = contributor.status().contributorId ?? '';
  const wallet = testWallet();
  await net.bind(id, wallet);
  return { id, wallet };
}

/** Waits until `n` of `id`'s canaries were checked (passed or failed). */
export async function canariesChecked(verification: Verification, id: string, n: number): Promise<void> {
  await waitFor(async () => {
    const { canaries } = await verification.report(id);
    return canaries.passed + canaries.failed === n;
  }, 90_000);
}

/** Runs `fn` with the URL of `manifestUrl`'s manifest in which the first file of `modelId` is off its SHA-256 pin. */
export async function withFileOffPin(manifestUrl: string, modelId: string, fn: (url: string) => Promise<void>): Promise<void> {
  const manifest = (await (await fetch(manifestUrl)).json()) as { models: { id: string; files: { sha256: string }[] }[] };
  const file = manifest.models.find((m) => m.id === modelId)?.files[0];
  if (file === undefined) throw new Error(`no ${modelId} in the manifest`);
  file.sha256 = file.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  const server = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(manifest)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}/manifest.json`);
  } finally {
    server.close();
  }
}
