import { describe, expect, it } from 'vitest';
import { ConnectedContributor } from '../leases/contributor.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import { FreeSlotIndex } from './free-slots.ts';
import { chooseContributor, type ContributorView, type JobView, type SchedulerHooks } from './scheduler.ts';

function contributor(
  id: string,
  models: string[],
  init: { consent?: JobKind[]; slots?: number; last?: number } = {},
): ConnectedContributor {
  const c = new ConnectedContributor({ id, hpkeKey: 'k'.repeat(43), send: () => {} });
  c.capabilities = {
    v: 1,
    type: 'capabilities',
    adapter: null,
    models: models.map((m) => ({ id: m, state: 'loaded' as const })),
    consent: init.consent ?? ['chat'],
    engineClass: 'x',
  };
  c.openSlots = init.slots ?? 1;
  c.lastAssignedAt = init.last ?? 0;
  return c;
}

function job(model: string, triedBy: string[] = []): JobView {
  return { id: `j-${model}`, apiKeyId: 'k', model, kind: 'chat', attempt: 1, triedBy: new Set(triedBy) };
}

/** An index fed by the contributors' change notices, as the relay wires it. */
function indexed(pool: ConnectedContributor[]): FreeSlotIndex<ConnectedContributor> {
  const index = new FreeSlotIndex<ConnectedContributor>();
  for (const c of pool) {
    c.onChange = (x) => index.touch(x);
    index.touch(c);
  }
  return index;
}

/** A small deterministic generator (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FreeSlotIndex', () => {
  it('files contributors per model and drops them when their slots run out or they leave', () => {
    const a = contributor('a', ['m1']);
    const b = contributor('b', ['m1', 'm2'], { last: 5 });
    const c = contributor('c', ['m2'], { slots: 0 });
    const index = indexed([a, b, c]);
    expect(index.candidates('m1').map((x) => x.id)).toEqual(['a', 'b']);
    expect(index.candidates('m2').map((x) => x.id)).toEqual(['b']);
    expect(index.freeCount).toBe(2);
    c.openSlots = 2;
    expect(index.candidates('m2').map((x) => x.id)).toEqual(['c', 'b']);
    a.openSlots = 0;
    expect(index.candidates('m1').map((x) => x.id)).toEqual(['b']);
    // As Relay.leave: no more change notices, then out of the index.
    b.onChange = null;
    index.remove(b);
    expect(index.candidates('m1')).toEqual([]);
    expect(index.candidates('m2').map((x) => x.id)).toEqual(['c']);
    // A late change to a contributor that left files nothing.
    b.openSlots = 3;
    expect(index.candidates('m2').map((x) => x.id)).toEqual(['c']);
    expect(index.candidates('m2').map((x) => x.id)).toEqual(['c']);
  });

  it('orders by load, then idle time: a lease taken or ended moves the contributor', () => {
    const a = contributor('a', ['m'], { slots: 4, last: 10 });
    const b = contributor('b', ['m'], { slots: 4, last: 20 });
    const index = indexed([a, b]);
    expect(index.choose(job('m'))?.id).toBe('a');
    a.leases.add('lease-1');
    expect(index.choose(job('m'))?.id).toBe('b');
    a.leases.delete('lease-1');
    expect(index.choose(job('m'))?.id).toBe('a');
    a.lastAssignedAt = 30;
    expect(index.choose(job('m'))?.id).toBe('b');
  });

  it('keeps the placement rules: consent, earlier attempts, demoted devices last, hooks', () => {
    const bad = contributor('bad', ['m'], { last: 1 });
    const embedOnly = contributor('embed-only', ['m'], { consent: ['embed'], last: 2 });
    const tried = contributor('tried', ['m'], { last: 3 });
    const good = contributor('good', ['m'], { last: 4 });
    const index = indexed([bad, embedOnly, tried, good]);
    const demote = (c: ContributorView): boolean => c.id === 'bad';
    expect(index.choose(job('m', ['tried']), { demote })?.id).toBe('good');
    expect(index.choose(job('m', ['tried', 'good']), { demote })?.id).toBe('bad');
    expect(index.choose(job('m', ['tried']), { demote, eligible: (c) => c.id !== 'good' })?.id).toBe('bad');
    expect(index.choose(job('other'))).toBeUndefined();
    const seen: string[][] = [];
    const pick: SchedulerHooks['pick'] = (candidates) => {
      seen.push(candidates.map((c) => c.id));
      return candidates.at(-1);
    };
    expect(index.choose(job('m'), { demote, pick })?.id).toBe('bad');
    expect(seen).toEqual([['tried', 'good', 'bad']]);
  });

  it('makes the same choice as the full scan through a random run of changes', () => {
    const next = random(12);
    const models = ['m1', 'm2', 'm3'];
    const pool = Array.from({ length: 60 }, (_, i) =>
      contributor(
        `c${i}`,
        models.filter(() => next() < 0.5),
        { slots: Math.floor(next() * 3), last: Math.floor(next() * 5), consent: next() < 0.2 ? ['embed'] : ['chat', 'embed'] },
      ),
    );
    const index = indexed(pool);
    const live = new Set(pool);
    let lease = 0;
    for (let step = 0; step < 3_000; step++) {
      const c = pool[Math.floor(next() * pool.length)] as ConnectedContributor;
      const r = next();
      if (r < 0.25) c.openSlots = Math.floor(next() * 4) - 1;
      else if (r < 0.45) c.lastAssignedAt = Math.floor(next() * 50);
      else if (r < 0.6) c.leases.add(`l${lease++}`);
      else if (r < 0.75) c.leases.delete([...c.leases][0] ?? 'none');
      else if (r < 0.8 && live.has(c)) {
        // As Relay.leave: no more change notices, out of the index.
        c.onChange = null;
        index.remove(c);
        live.delete(c);
      } else if (r < 0.85 && !live.has(c)) {
        live.add(c);
        c.onChange = (x) => index.touch(x);
        index.touch(c);
      }
      const j = job(models[Math.floor(next() * models.length)] as string, next() < 0.3 ? [`c${Math.floor(next() * 60)}`] : []);
      j.kind satisfies JobKind;
      const demote = (x: ContributorView): boolean => Number(x.id.slice(1)) % 7 === 0;
      const scan = [...live].filter((x) => x.openSlots > 0 && x.capabilities !== null);
      // Equal keys: the scan keeps pool order, the index join order; compare the keys, not the objects.
      const expected = chooseContributor(scan, j, { demote });
      const got = index.choose(j, { demote });
      const key = (x: ContributorView | undefined): string =>
        x === undefined ? 'none' : `${demote(x) ? 1 : 0}/${x.inFlight}/${x.lastAssignedAt}`;
      expect(key(got), `step ${step}`).toBe(key(expected));
      if (got !== undefined) expect(live.has(got) && got.openSlots > 0).toBe(true);
    }
  });
});
