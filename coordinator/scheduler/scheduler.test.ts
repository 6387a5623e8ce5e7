import { describe, expect, it } from 'vitest';
import type { JobKind } from '../../protocol/manifest.ts';
import { chooseContributor, type ContributorView, type JobView } from './scheduler.ts';

type State = 'loaded' | 'cached' | 'available';

function contributor(
  id: string,
  init: {
    model?: State;
    consent?: JobKind[];
    openSlots?: number;
    inFlight?: number;
    lastAssignedAt?: number;
  } = {},
): ContributorView {
  return {
    id,
    hpkeKey: 'k'.repeat(43),
    capabilities: {
      v: 1,
      type: 'capabilities',
      adapter: null,
      models: init.model === undefined ? [{ id: 'other', state: 'loaded' }] : [{ id: 'm', state: init.model }],
      consent: init.consent ?? ['chat'],
      engineClass: 'x',
    },
    openSlots: init.openSlots ?? 1,
    inFlight: init.inFlight ?? 0,
    lastAssignedAt: init.lastAssignedAt ?? 0,
  };
}

const job: JobView = { id: 'j', apiKeyId: 'k', model: 'm', kind: 'chat', attempt: 1, triedBy: new Set() };

describe('chooseContributor', () => {
  it('places by observed record, not by claimed model states: a fake `loaded` claim wins nothing', () => {
    const liar = contributor('claims-loaded', { model: 'loaded', lastAssignedAt: 50 });
    const plain = contributor('plain', { model: 'available', lastAssignedAt: 10 });
    // The claims are ignored: round-robin picks the one idle longest.
    expect(chooseContributor([liar, plain], job)?.id).toBe('plain');
    // A device with a bad record comes after every other, however long it waited.
    const demote = (c: ContributorView): boolean => c.id === 'plain';
    expect(chooseContributor([liar, plain], job, { demote })?.id).toBe('claims-loaded');
    expect(chooseContributor([plain], job, { demote })?.id).toBe('plain');
  });

  it('skips workers without free slots, consent, the model, or an earlier attempt of the job', () => {
    const pool = [
      contributor('full', { model: 'loaded', openSlots: 0 }),
      contributor('noconsent', { model: 'loaded', consent: ['embed'] }),
      contributor('nomodel'),
      contributor('tried', { model: 'loaded' }),
    ];
    expect(chooseContributor(pool, { ...job, triedBy: new Set(['tried']) })).toBeUndefined();
    expect(chooseContributor(pool, job)?.id).toBe('tried');
  });

  it('among equals, picks the least loaded, then the one idle longest (round-robin)', () => {
    const busy = contributor('busy', { model: 'cached', inFlight: 3, lastAssignedAt: 1 });
    const recent = contributor('recent', { model: 'cached', inFlight: 1, lastAssignedAt: 900 });
    const idle = contributor('idle', { model: 'cached', inFlight: 1, lastAssignedAt: 100 });
    expect(chooseContributor([busy, recent, idle], job)?.id).toBe('idle');
  });

  it('applies the eligible and pick hooks', () => {
    const pool = [contributor('a', { model: 'loaded' }), contributor('b', { model: 'cached' }), contributor('c', { model: 'available' })];
    expect(chooseContributor(pool, job, { eligible: (c) => c.id !== 'a' })?.id).toBe('b');
    const seen: string[][] = [];
    const picked = chooseContributor(pool, job, {
      pick: (candidates) => {
        seen.push(candidates.map((c) => c.id));
        return candidates.at(-1);
      },
    });
    expect(seen).toEqual([['a', 'b', 'c']]);
    expect(picked?.id).toBe('c');
    expect(chooseContributor(pool, job, { pick: () => undefined })).toBeUndefined();
  });
});
