/** What a contributor (./contributor.ts) is built from: the runtime it serves with, and the caller's options. */
import type { JobKind } from '../../protocol/manifest.ts';
import type { Controls, Signals } from '../controls/rules.ts';
import type { BenchScore, CapabilitySource } from './capabilities.ts';
import type { ConnectionOptions } from './connection.ts';
import type { DeviceIdentity } from './identity.ts';
import type { JobRunner } from './job.ts';
import type { DeviceLossReport } from './status.ts';

/** What the contributor needs from the runtime; `Runtime` fits. */
export type ContributorRuntime = JobRunner &
  CapabilitySource & {
    onDeviceLost?(listener: (report: DeviceLossReport) => void): () => void;
    loadingModels?(): string[];
    onLoadingChange?(listener: () => void): () => void;
  };

export interface ContributorOptions extends Pick<ConnectionOptions, 'webSocket' | 'clock' | 'random' | 'backoff'> {
  /** `wss://…/v1/contributor`. */
  coordinatorUrl: string;
  runtime: ContributorRuntime;
  identity: DeviceIdentity;
  /** Jobs run at once; 1 by default. */
  slots?: number;
  /** Job kinds the owner allows; when given, overrides `controls.consent`. */
  consent?: readonly JobKind[];
  /** The owner's rules (worker/controls/rules.ts); defaults where missing. */
  controls?: Partial<Controls>;
  /** What the page knows: visibility, battery, idle. */
  signals?: Partial<Signals>;
  /** A remote pause saved from an earlier session: it lasts until the coordinator sends `resume`. */
  remotePaused?: boolean;
  /** Hears each remote pause (true) and resume (false), so the caller can save it. */
  onRemotePause?: (paused: boolean) => void;
  /** The device label its owner gave it, sent in `status` (kiosk and lab fleets). */
  label?: string;
  client: { name: string; version: string };
  /** Session token from wallet or kiosk enrollment. */
  session?: string;
  bench?: BenchScore;
  /** Reconnect when no `welcome` came this long after the socket opened, ms; 15 000 by default. */
  handshakeTimeoutMs?: number;
}
