import { describe, expect, it } from 'vitest';
import { History } from './history.ts';

class MemoryStorage {
  readonly map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
}

const receipt = (jobId: string, at: number, tokens: number) => ({ jobId, model: 'm', tokens, amountNano: '5', at });

describe('dashboard history', () => {
  it('buckets jobs and receipt tokens by minute and survives a reload', () => {
    const storage = new MemoryStorage();
    const a = new History(storage);
    a.addJobs(2, 120_500);
    a.addJobs(1, 179_999);
    a.addJobs(1, 180_000);
    expect(a.addReceipts([receipt('j1', 121_000, 600), receipt('j2', 185_000, 60)])).toBe(2);
    expect(a.addReceipts([receipt('j1', 121_000, 600)])).toBe(0);

    const b = new History(storage);
    expect(b.series()).toEqual([
      [120, 180],
      [3, 1],
      [10, 1],
    ]);
    expect(b.data.receipts.map((r) => r.jobId)).toEqual(['j1', 'j2']);
    // Minutes with nothing are zeros; earnings are the receipts' nanoTON per minute, exact.
    expect(b.minutes(130_000, 299_999)).toEqual({ at: [120_000, 180_000, 240_000], jobs: [3, 1, 0], earnedNano: [5n, 5n, 0n] });
    expect(b.jobsSince(150_000)).toBe(4);
    expect(b.firstMinute()).toBe(120_000);
  });

  it('starts empty on a damaged record', () => {
    const storage = new MemoryStorage();
    storage.setItem('spinneret.history', '{not json');
    expect(new History(storage).data).toEqual({ points: [], receipts: [], benchmark: null });
  });
});
