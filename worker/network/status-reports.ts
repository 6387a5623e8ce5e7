/**
 * The `status` message a contributor sends after `welcome`: what the tab can do now (visible or
 * hidden, the rule that pauses it, its measured pace, its label), again whenever that changes and
 * with a fresh pace now and then, so leases fit the tab.
 */
import type * as v from 'valibot';
import { PROTOCOL_VERSION, type Status } from '../../protocol/wire.ts';
import type { Pace } from '../controls/pace.ts';

export type StatusMessage = v.InferOutput<typeof Status>;

/** Resend `status` with a fresh pace at least this often while jobs end, ms. */
const PACE_EVERY_MS = 15_000;

export class StatusReports {
  #sent: { key: string; at: number } | null = null;

  /**
   * The `status` to send at `now`: when `force`d, when what it says changed, or when the last is
   * older than {@link PACE_EVERY_MS}; null when there is nothing new. `pace` is measured only for
   * a message sent.
   */
  next(
    now: number,
    says: Pick<StatusMessage, 'visibility' | 'pausedBy' | 'label'>,
    pace: () => Pace | undefined,
    force: boolean,
  ): StatusMessage | null {
    const { visibility, pausedBy, label } = says;
    const key = `${visibility}|${pausedBy}|${label}`;
    const sent = this.#sent;
    if (!force && sent !== null && sent.key === key && now - sent.at < PACE_EVERY_MS) return null;
    const measured = pace();
    this.#sent = { key, at: now };
    return {
      v: PROTOCOL_VERSION,
      type: 'status',
      visibility,
      pausedBy,
      ...(measured && { pace: measured }),
      ...(label !== undefined && { label }),
    };
  }
}
