/**
 * What the status band says about the contributor, settled: a state word that changes only when
 * the situation does, not at every job's start and end. Between jobs of a steady trickle the
 * worker is `connected`, and during a duty-cycle rest `paused`; both still read "Working" while
 * jobs keep coming. A short reconnect (a new wallet session, a dropped socket) keeps the last word.
 */
import type { PauseRule } from '../protocol/wire.ts';
import type { ContributorStatus } from '../worker/network/status.ts';

/** The words the band can show. */
export type Shown = 'off' | 'starting' | 'working' | 'waiting' | 'paused' | 'trouble';

export interface Settled {
  shown: Shown;
  /** The owner's rule that pauses, for `paused`. */
  rule: PauseRule | null;
}

/** Without a job for this long, "Working" becomes "Waiting for jobs", ms. */
export const QUIET_MS = 90_000;

/** Settles the raw status into what the band says, given what it said before. */
export function settle(previous: Settled | null, s: ContributorStatus, now: number, quietMs = QUIET_MS): Settled {
  const recent = s.lastJobAt !== null && now - s.lastJobAt < quietMs;
  const busy: Settled = { shown: recent || s.running > 0 ? 'working' : 'waiting', rule: null };
  switch (s.state) {
    case 'idle':
      return { shown: 'off', rule: null };
    case 'working':
      return { shown: 'working', rule: null };
    case 'connected':
      return busy;
    case 'paused':
      // A duty-cycle rest is part of working; a pause without a rule is the worker renewing its session or draining.
      if (s.pausedBy === 'duty-cycle' || s.pausedBy === null) return busy;
      return { shown: 'paused', rule: s.pausedBy };
    case 'connecting':
      if (s.reconnectAttempts === 0 && s.contributorId !== null && previous !== null && previous.shown !== 'off') return previous;
      if (s.reconnectAttempts > 1 || s.lastError !== null) return { shown: 'trouble', rule: null };
      return { shown: 'starting', rule: null };
    case 'error':
      return { shown: 'trouble', rule: null };
  }
}

export function sameSettled(a: Settled | null, b: Settled): boolean {
  return a !== null && a.shown === b.shown && a.rule === b.rule;
}

/** Colour of the dot in the favicon and beside the state word. */
export const SHOWN_COLOUR: Record<Shown, string | null> = {
  off: null,
  starting: '#0284c7',
  working: '#16a34a',
  waiting: '#0284c7',
  paused: '#d97706',
  trouble: '#dc2626',
};

/** The app icon with a status dot, as an SVG data URL (the CSP allows data: images). */
export function faviconFor(shown: Shown): string {
  const colour = SHOWN_COLOUR[shown];
  const dot = colour === null ? '' : `<circle cx="50" cy="50" r="13" fill="${colour}" stroke="#fff" stroke-width="3"/>`;
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#0f172a"/>' +
    '<g fill="none" stroke="#38bdf8" stroke-width="3" stroke-linecap="round"><circle cx="32" cy="32" r="6"/>' +
    '<path d="M32 8v10M32 46v10M8 32h10M46 32h10M15 15l7 7M42 42l7 7M49 15l-7 7M22 42l-7 7"/></g>' +
    dot +
    '</svg>';
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/** The status of a contributor not started: what the page shows before the worker reports. */
export function idleStatus(): ContributorStatus {
  return {
    state: 'idle',
    lastError: null,
    contributorId: null,
    jobsDone: 0,
    jobsFailed: 0,
    jobsStopped: 0,
    running: 0,
    slots: 0,
    consent: [],
    lastJobAt: null,
    reconnectAttempts: 0,
    nextAttemptAt: null,
    pausedBy: null,
    resumeAt: null,
    unusable: [],
    ownerMessage: null,
    visibility: 'visible',
    pace: undefined,
    recentJobs: [],
    device: { losses: 0, lastLoss: null },
    loading: [],
  };
}
