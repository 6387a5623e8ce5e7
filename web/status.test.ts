import { describe, expect, it } from 'vitest';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import { faviconFor, idleStatus, settle, type Settled } from './status.ts';

const base: ContributorStatus = { ...idleStatus(), slots: 1, consent: ['embed'], contributorId: 'dev1' };
const at = (s: Partial<ContributorStatus>): ContributorStatus => ({ ...base, ...s });

describe('the settled status', () => {
  it('says "working" through a steady trickle of jobs, and its gaps, duty-cycle rests included', () => {
    let shown: Settled | null = null;
    const seen: string[] = [];
    // A job every 3 s for 30 s: each takes 1 s; between jobs the worker is connected, or resting at 50 %.
    for (let t = 0; t < 30_000; t += 500) {
      const phase = t % 3000;
      const lastJobAt = t >= 1000 ? t - phase + (phase >= 1000 ? 1000 : -2000) : null;
      const raw =
        phase < 1000
          ? at({ state: 'working', running: 1, lastJobAt })
          : phase < 2000
            ? at({ state: 'paused', pausedBy: 'duty-cycle', lastJobAt })
            : at({ state: 'connected', lastJobAt });
      shown = settle(shown, raw, t);
      if (seen.at(-1) !== shown.shown) seen.push(shown.shown);
    }
    expect(seen).toEqual(['working']);
  });

  it('waits after a long quiet, names the rule that pauses, and says trouble after failed attempts', () => {
    expect(settle(null, at({ state: 'connected', lastJobAt: 0 }), 200_000).shown).toBe('waiting');
    expect(settle(null, at({ state: 'connected', lastJobAt: null }), 5).shown).toBe('waiting');
    expect(settle(null, at({ state: 'paused', pausedBy: 'battery' }), 0)).toEqual({ shown: 'paused', rule: 'battery' });
    expect(settle(null, at({ state: 'error', lastError: 'x' }), 0).shown).toBe('trouble');
    expect(settle(null, at({ state: 'connecting', reconnectAttempts: 3, lastError: 'x' }), 0).shown).toBe('trouble');
    expect(settle(null, at({ state: 'connecting', contributorId: null }), 0).shown).toBe('starting');
    expect(settle(null, at({ state: 'idle' }), 0).shown).toBe('off');
  });

  it('keeps its word through a planned reconnect (a new wallet session)', () => {
    const working: Settled = { shown: 'working', rule: null };
    expect(settle(working, at({ state: 'connecting', reconnectAttempts: 0 }), 0)).toBe(working);
  });

  it('marks the favicon with the state’s colour', () => {
    expect(decodeURIComponent(faviconFor('working'))).toContain('#16a34a');
    expect(decodeURIComponent(faviconFor('off'))).not.toContain('<circle cx="50"');
  });
});
