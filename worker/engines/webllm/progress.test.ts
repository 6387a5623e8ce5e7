import { describe, expect, it } from 'vitest';
import { progressFromReport } from './progress.ts';

const MiB = 1024 * 1024;

describe('progressFromReport', () => {
  it("reads web-llm's report texts", () => {
    expect(progressFromReport('m', { progress: 1, timeElapsed: 3, text: 'Finish loading on WebGPU - google' }).phase).toBe('ready');
    expect(
      progressFromReport('m', {
        progress: 0.25,
        timeElapsed: 3,
        text: 'Loading model from cache[1/4]: 10MB loaded. 25% completed, 3 secs elapsed.',
      }),
    ).toMatchObject({
      phase: 'compile',
      loadedBytes: 10 * MiB,
      totalBytes: 40 * MiB,
    });
    expect(
      progressFromReport('m', { progress: 0.5, timeElapsed: 3, text: 'Loading GPU shader modules[5/10]: 50% completed, 3 secs elapsed.' }),
    ).toMatchObject({
      phase: 'compile',
      loadedBytes: 0,
      totalBytes: 0,
    });
    expect(progressFromReport('m', { progress: 0, timeElapsed: 0, text: 'Start to fetch params' }).phase).toBe('download');
  });
});
