/** Verification from the configuration: canaries with known answers, replication, quarantine. */
import type { Logger as Pino } from 'pino';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import type { Verification } from '../../coordinator/verification/service.ts';
import type { CoordinatorConfig } from '../config.ts';
import { startVerification } from '../verification.ts';

/** Where the known answers of each kind of ONNX model come from (imported when used: they load onnxruntime-node). */
const GENERATORS: { models: string; generate: (manifestUrl: string) => Promise<KnownAnswer[]> }[] = [
  {
    models: 'generation',
    generate: async (manifestUrl) =>
      (await import('../known-answers/onnx-answers.ts')).onnxGenerateKnownAnswers({ manifestUrl, count: 32 }),
  },
  {
    models: 'infer',
    generate: async (manifestUrl) =>
      (await import('../known-answers/onnx-infer-answers.ts')).onnxInferKnownAnswers({ manifestUrl, count: 32 }),
  },
];

/** Canary answers for ONNX decoders and `infer` models of the manifest (none, logged, when they cannot be computed). */
async function generateKnownAnswers(manifestUrl: string, log: Pino): Promise<KnownAnswer[]> {
  const answers: KnownAnswer[] = [];
  for (const { models, generate } of GENERATORS) {
    try {
      const generated = await generate(manifestUrl);
      log.info({ component: 'verification', knownAnswers: generated.length }, `known answers computed for ONNX ${models} models`);
      answers.push(...generated);
    } catch (err) {
      log.error({ component: 'verification', err }, `no known answers for ONNX ${models} models: they are checked by replicas only`);
    }
  }
  return answers;
}

/** Computes the known answers, then starts verification with the configured rates and windows. */
export async function startConfiguredVerification(config: CoordinatorConfig, store: SqlStore, log: Pino): Promise<Verification> {
  // Known answers for the manifest's ONNX generation and infer models, computed here on the CPU from their
  // pinned files; without them (the host unreachable, a file off its pin) those models are checked by replicas only.
  const knownAnswers = await generateKnownAnswers(config.manifestUrl, log);
  return startVerification({
    store,
    knownAnswers,
    verdictWindowMs: config['verification.verdictWindow'],
    probationCreditCap: config['verification.probationCreditCap'],
    canaryDelayMs: config['verification.canaryDelay'],
    policy: {
      canaryRate: config['verification.canaryRate'],
      baseReplicationRate: config['verification.replicationRate'],
      minReplicationRate: config['verification.minReplicationRate'],
      quarantineAfter: config['verification.quarantineAfter'],
    },
    log: (message, err) => log.error({ component: 'verification', ...(err === undefined ? {} : { err }) }, message),
  });
}
