/**
 * What a contributor offers the coordinator and which leased jobs it takes: the `capabilities`
 * under the owner's download and GPU memory caps (sent again only when the model states change),
 * and the checks a job must pass before it runs (a free slot, the owner's consent, a model within
 * the caps).
 */
import type { WireError } from '../../protocol/wire.ts';
import type { Controls } from '../controls/rules.ts';
import {
  describeCapabilities,
  withinCaps,
  type BenchScore,
  type CapabilitiesMessage,
  type CapabilitySource,
  type ModelCaps,
} from './capabilities.ts';
import type { JobMessage } from './job.ts';

const MIB = 1024 * 1024;

/** A `capabilities` message described and not yet sent, with the models the caps rule out. */
export interface Described {
  capabilities: CapabilitiesMessage;
  /** The model states it announces, to compare with those last sent. */
  states: string;
  capped: ReadonlySet<string>;
}

export class Offer {
  readonly #runtime: CapabilitySource;
  /** The model states last sent in `capabilities`. */
  #sentStates = '';
  /** Models the owner's caps rule out, from the last capabilities sent. */
  #capped: ReadonlySet<string> = new Set();

  constructor(runtime: CapabilitySource) {
    this.#runtime = runtime;
  }

  /** The capabilities for the owner's rules now (read at once, before the runtime answers). */
  async describe(controls: Controls, bench: BenchScore | undefined): Promise<Described> {
    const { consent, maxDownloadMiB, maxVramMiB } = controls;
    const caps: ModelCaps = {
      maxDownloadBytes: maxDownloadMiB === null ? null : maxDownloadMiB * MIB,
      maxVramBytes: maxVramMiB === null ? null : maxVramMiB * MIB,
    };
    const [capabilities, models] = await Promise.all([describeCapabilities(this.#runtime, consent, bench, caps), this.#runtime.models()]);
    return {
      capabilities,
      states: JSON.stringify(capabilities.models),
      capped: new Set(models.filter((m) => !withinCaps(m, caps)).map((m) => m.id)),
    };
  }

  /** Whether `described` announces other model states than those last sent. */
  changed(described: Described): boolean {
    return described.states !== this.#sentStates;
  }

  /** Notes `described` as sent: its caps now decide which jobs are refused. */
  sent(described: Described): void {
    this.#sentStates = described.states;
    this.#capped = described.capped;
  }

  /** Why `job` is refused (`free`: slots free for it; `controls`: the owner's rules), or null to run it. */
  refusal(job: JobMessage, free: number, controls: Controls): WireError | null {
    if (free === 0) return { code: 'QUOTA', message: 'No free slot: this worker did not offer one for the job.' };
    if (!controls.consent.includes(job.kind)) return { code: 'CONFLICT', message: `The contributor does not allow ${job.kind} jobs.` };
    if (this.#capped.has(job.model))
      return { code: 'CONFLICT', message: `Model ${job.model} is over this contributor's download or GPU memory cap.` };
    return null;
  }
}
