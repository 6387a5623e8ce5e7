import { describe, expect, it } from 'vitest';
import type { HeldAssignment } from '../protocol/requester-channel.ts';
import { AssignmentPool } from './assignments.ts';

const held = (jobId: string): HeldAssignment => ({ jobId, attempt: 1, contributorId: 'c', hpkeKey: 'k'.repeat(43) });

describe('AssignmentPool', () => {
  it('asks for a batch when half are used, one ask at a time, and hands them out oldest first', () => {
    const pool = new AssignmentPool(4, () => 0);
    expect(pool.toAsk('m', 'chat')).toBe(4);
    expect(pool.toAsk('m', 'chat')).toBe(0); // one in flight
    expect(pool.toAsk('n', 'chat')).toBe(4); // per model and kind
    pool.answered('m', 'chat', ['a', 'b', 'c', 'd'].map(held), 10_000);
    expect(pool.toAsk('m', 'chat')).toBe(0); // full
    expect(pool.take('m', 'chat')?.jobId).toBe('a');
    expect(pool.toAsk('m', 'chat')).toBe(0); // 3 of 4 left
    expect(pool.take('m', 'chat')?.jobId).toBe('b');
    expect(pool.toAsk('m', 'chat')).toBe(2); // half left: a batch for the rest
    expect(pool.take('m', 'embed')).toBeUndefined();
  });

  it('never hands out one past the share of its lifetime it is used in', () => {
    let now = 0;
    const pool = new AssignmentPool(2, () => now);
    pool.toAsk('m', 'chat');
    pool.answered('m', 'chat', [held('a'), held('b')], 10_000);
    now = 7_999;
    expect(pool.take('m', 'chat')?.jobId).toBe('a');
    now = 8_000;
    expect(pool.take('m', 'chat')).toBeUndefined();
  });

  it('waits a moment before asking again after an empty answer or a refusal', () => {
    let now = 0;
    const pool = new AssignmentPool(2, () => now);
    pool.toAsk('m', 'chat');
    pool.answered('m', 'chat', [], 10_000);
    expect(pool.toAsk('m', 'chat')).toBe(0);
    now = 1_000;
    expect(pool.toAsk('m', 'chat')).toBe(2);
    expect(new AssignmentPool(0).toAsk('m', 'chat')).toBe(0); // off
  });
});
