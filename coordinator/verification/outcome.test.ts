import { describe, expect, it } from 'vitest';
import type { JobResult } from '../../protocol/jobs.ts';
import { judge, type Run } from './outcome.ts';

const usage = { promptTokens: 1, completionTokens: 0 };
const right: JobResult = { kind: 'embed', embeddings: [[1, 0, 0]], usage };
const wrong: JobResult = { kind: 'embed', embeddings: [[0, 1, 0]], usage };
const other: JobResult = { kind: 'embed', embeddings: [[0, 0, 1]], usage };
const run = (contributorId: string, result: JobResult): Run => ({ contributorId, result });
const summary = (j: ReturnType<typeof judge>): string[] => j.findings.map((f) => `${f.contributorId}:${f.kind}:${f.standing}:${f.ledger}`);

describe('judge', () => {
  it('settles unchecked work', () => {
    expect(summary(judge({ jobId: 'j', check: 'none', primary: run('a', wrong) }))).toEqual(['a:unchecked:unchecked:settle']);
  });

  it('fails a wrong canary answer and voids it', () => {
    expect(summary(judge({ jobId: 'j', check: 'canary', primary: run('a', right), expected: right }))).toEqual([
      'a:canary-pass:clean:settle',
    ]);
    const j = judge({ jobId: 'j', check: 'canary', primary: run('a', wrong), expected: right });
    expect(summary(j)).toEqual(['a:canary-fail:failed:void']);
    expect(j.findings[0]?.reason).toMatch(/known answer/);
  });

  it('holds both credits and asks for a tie-break when replicas disagree', () => {
    const j = judge({ jobId: 'j', check: 'replica', primary: run('a', right), replica: run('b', wrong) });
    expect(j.needsTieBreak).toBe(true);
    expect(summary(j)).toEqual(['a:replica-disagree:suspect:hold', 'b:replica-disagree:suspect:hold']);
    const agree = judge({ jobId: 'j', check: 'replica', primary: run('a', right), replica: run('b', right) });
    expect(agree.needsTieBreak).toBe(false);
    expect(summary(agree)).toEqual(['a:replica-agree:clean:settle', 'b:replica-agree:clean:settle']);
  });

  it('blames the odd one out after a tie-break, either side', () => {
    expect(
      summary(judge({ jobId: 'j', check: 'tie-break', primary: run('a', right), replica: run('b', wrong), tieBreaker: run('c', right) })),
    ).toEqual(['a:tie-break-pass:clean:settle', 'b:tie-break-fail:failed:void', 'c:tie-break-pass:clean:settle']);
    expect(
      summary(judge({ jobId: 'j', check: 'tie-break', primary: run('a', wrong), replica: run('b', right), tieBreaker: run('c', right) })),
    ).toEqual(['a:tie-break-fail:failed:void', 'b:tie-break-pass:clean:settle', 'c:tie-break-pass:clean:settle']);
  });

  it('blames no one and pays no one when no two of three agree', () => {
    const j = judge({ jobId: 'j', check: 'tie-break', primary: run('a', right), replica: run('b', wrong), tieBreaker: run('c', other) });
    expect(summary(j)).toEqual(['a', 'b', 'c'].map((id) => `${id}:tie-break-inconclusive:suspect:void`));
  });
});
