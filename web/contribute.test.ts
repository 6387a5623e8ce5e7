import { describe, expect, it } from 'vitest';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import { idleStatus } from '../worker/network/status.ts';
import { statusWords } from './contribute.ts';
import { setLanguage, t } from './i18n/index.ts';

const base: ContributorStatus = { ...idleStatus(), slots: 1, consent: ['embed'] };

const words = (s: Partial<ContributorStatus>, now = 0): string => {
  const w = statusWords({ ...base, ...s }, now);
  return t(w.key, w.params);
};

describe('contributor status in words', () => {
  it('says each state, with what to do', () => {
    setLanguage('en', { save: false });
    expect(words({ state: 'idle' })).toBe('Not contributing. Press Start to serve the network.');
    expect(words({ state: 'connected' })).toBe('Connected, waiting for jobs (no demand right now).');
    expect(words({ state: 'working', running: 1 })).toContain('Working on a job (1 running)');
    expect(words({ state: 'working', running: 1, loading: ['tiny-embed'] })).toContain('Loading a model for a job: tiny-embed');
    expect(words({ state: 'connecting', reconnectAttempts: 2, nextAttemptAt: 4_500 }, 1_000)).toBe(
      'Could not reach the network; trying again in 4 s (attempt 2).',
    );
    expect(words({ state: 'error', lastError: 'refused: bad hello' })).toBe('Error: refused: bad hello');
  });

  it('names the rule that pauses the device, in the chosen language', () => {
    setLanguage('en', { save: false });
    expect(words({ state: 'paused', pausedBy: 'battery' })).toBe(
      'Paused by a rule: the battery rule (on battery or low battery). A job already running finishes.',
    );
    expect(words({ state: 'paused', pausedBy: null })).toBe('Paused: taking no new jobs.');
    setLanguage('ru', { save: false });
    expect(words({ state: 'paused', pausedBy: 'schedule' })).toContain('расписание');
    setLanguage('en', { save: false });
  });
});
