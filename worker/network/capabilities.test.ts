import { describe, expect, it } from 'vitest';
import { downloadBytes, withinCaps } from './capabilities.ts';

const MiB = 1024 * 1024;
const model = { cached: false, sizeBytes: 4 * MiB, vramBytes: 10 * MiB, plan: null, runtimeBytes: 5 * MiB };
const caps = (maxDownloadMiB: number | null) => ({
  maxDownloadBytes: maxDownloadMiB === null ? null : maxDownloadMiB * MiB,
  maxVramBytes: null,
});

describe('the download cap', () => {
  it('counts the engine runtime a first job downloads, not only the model files', () => {
    expect(downloadBytes(model)).toBe(9 * MiB);
    // The model alone (4 MiB) fits a 6 MiB cap; with the runtime (5 MiB, compressed) it does not.
    expect(withinCaps(model, caps(6))).toBe(false);
    expect(withinCaps(model, caps(9))).toBe(true);
    expect(withinCaps(model, caps(null))).toBe(true);
  });

  it('counts nothing for what the browser holds already', () => {
    expect(downloadBytes({ ...model, cached: true, runtimeBytes: 0 })).toBe(0);
    expect(withinCaps({ ...model, cached: true, runtimeBytes: 0 }, caps(1))).toBe(true);
    expect(withinCaps({ ...model, cached: true }, caps(1))).toBe(false);
  });
});
