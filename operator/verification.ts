/**
 * Verification of a coordinator, wired from a few settings: the policy with a secure random
 * source, known-answer canaries for the test models (drawn from a secret seed, so they
 * cannot be read off the source), and the receipt key kept in the coordinator's database.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { systemClock } from '../coordinator/clock.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { type KnownAnswer, KnownAnswerCanaries } from '../coordinator/verification/canaries.ts';
import { ShapedCanaries } from '../coordinator/verification/canary-shapes.ts';
import { receiptKekFromEnv } from '../coordinator/verification/receipt-key.ts';
import { tinyEmbedKnownAnswers } from './known-answers/tiny-embed.ts';
import { type VerificationConfig, VerificationPolicy } from '../coordinator/verification/policy.ts';
import { createVerification, type Verification } from '../coordinator/verification/service.ts';

export interface LocalVerificationOptions {
  store: SqlStore;
  /** Policy settings; the rest keep the defaults below. */
  policy?: Partial<Omit<VerificationConfig, 'random' | 'clock'>>;
  /** How long a replicated job waits for its replica and the requester's verdict, ms. Default 10 min. */
  verdictWindowMs?: number;
  /** Known-answer jobs to draw canaries from. Default 256. */
  canaryCount?: number;
  /** Further known answers (ONNX generation and infer models, from known-answers/onnx-answers.ts and known-answers/onnx-infer-answers.ts), drawn from beside `tiny-embed`'s. */
  knownAnswers?: readonly KnownAnswer[];
  /** How long a device on probation has its credits held, ms; default 0 (off). Production sets it (e.g. 48 h). */
  probationWindowMs?: number;
  /** The receipt key's KEK; default from `SPINNERET_RECEIPT_KEK` or `SPINNERET_RECEIPT_KEK_FILE` (none: the key is stored plain). */
  receiptKek?: Uint8Array | null;
  /** Where unexpected failures go; default console.error. */
  log?: (message: string, err?: unknown) => void;
  /** Canaries go out at a random moment up to this long after the job that drew them, ms. Default 0 (at once); production sets it. */
  canaryDelayMs?: number;
  /** Most unchecked credit a device on probation may have settle, nanoTON; default 1 TON; null: no cap. */
  probationCreditCap?: bigint | null;
}

/**
 * Defaults: 5 % canaries (30 % for a device on probation, its first 20 clean checks),
 * replication from 10 % down to 1 % (×0.93 per clean check), a first failure on a model benches the device there
 * for 10 minutes, and 3 further failed checks in a day quarantine its wallet for a day.
 */
export const DEFAULT_POLICY: Omit<VerificationConfig, 'random' | 'clock'> = {
  canaryRate: 0.05,
  baseReplicationRate: 0.1,
  minReplicationRate: 0.01,
  decayPerCleanJob: 0.93,
  failureBoost: 3,
  quarantineAfter: 3,
  windowMs: 24 * 3_600_000,
  quarantineMs: 24 * 3_600_000,
  benchFirstFailure: true,
  benchMs: 600_000,
  probationChecks: 20,
  probationCanaryRate: 0.3,
};

/** Floats in [0, 1) from 48 secure random bits. */
export const secureUniform = (): number => randomBytes(6).readUIntBE(0, 6) / 2 ** 48;

export async function startVerification(options: LocalVerificationOptions): Promise<Verification> {
  // Canaries turned off stay off on probation too.
  const probation = options.policy?.canaryRate === 0 ? { probationCanaryRate: 0 } : {};
  const policy = new VerificationPolicy({ ...DEFAULT_POLICY, ...probation, ...options.policy, random: secureUniform, clock: systemClock });
  const answers = tinyEmbedKnownAnswers(options.canaryCount ?? 256, randomInt(2 ** 31));
  const verification = createVerification({
    db: options.store.db,
    policy,
    // Validated as operator data, then shaped like the real jobs of each model.
    canaries: new ShapedCanaries(
      new KnownAnswerCanaries([...answers, ...(options.knownAnswers ?? [])], secureUniform).answers,
      secureUniform,
    ),
    random: secureUniform,
    ...(options.canaryDelayMs !== undefined && { canaryDelayMs: options.canaryDelayMs }),
    ...(options.probationCreditCap !== undefined && { probationCreditCap: options.probationCreditCap }),
    clock: systemClock,
    verdictWindowMs: options.verdictWindowMs ?? 600_000,
    ...(options.probationWindowMs !== undefined && { probationWindowMs: options.probationWindowMs }),
    receiptKek: options.receiptKek === undefined ? receiptKekFromEnv() : options.receiptKek,
    ...(options.log !== undefined && { log: options.log }),
  });
  await verification.start();
  return verification;
}
