/**
 * The requester SDK when the coordinator stays away: a typed error after its tries or its time,
 * holding nothing; an abort ends a wait at once; a creation is retried only when it surely
 * reached nothing (or under an idempotency key); backoff stays within its capped ceiling.
 */
import { describe, expect, it, vi } from 'vitest';
import { TINY_CHAT as chat } from '../testing/faults.ts';
import { countingFetch, freePort } from '../testing/http.ts';
import { RequesterClient } from './client.ts';
import { CoordinatorUnavailableError, RetriesExhaustedError } from './errors.ts';
import { backoffMs, DEFAULT_RETRY, mayRetryCreate, NOT_SENT } from './retry.ts';

vi.setConfig({ testTimeout: 60_000 });

describe('the requester SDK when the coordinator stays away', () => {
  it.each([false, true])('gives up with a typed error after its tries or its time, holding nothing (channel: %s)', async (channel) => {
    const port = await freePort();
    const byTries = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      channel,
      retry: { attempts: 4, baseMs: 10, capMs: 40, forMs: 30_000 },
    });
    const err = await byTries.run(chat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect(err).toMatchObject({ attempts: 4, status: 0 });
    expect((err as Error).message).toMatch(/creating the job: gave up after 4 tries/);
  });

  it('gives up by time, and an abort ends a wait at once', async () => {
    const port = await freePort();
    const started = Date.now();
    const timed = countingFetch();
    const byTime = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      fetch: timed.fetch,
      retry: { attempts: 1_000, baseMs: 100, capMs: 100, forMs: 500 },
    });
    const late = (await byTime.run(chat).catch((e: unknown) => e)) as RetriesExhaustedError;
    expect(late).toBeInstanceOf(RetriesExhaustedError);
    expect(late.attempts).toBeLessThan(1_000);
    // No try starts past the 500 ms (a timer may fire late on a loaded machine, and the last try takes its time).
    const tries = timed.at('GET', /^\/v1\/models\//);
    expect(tries).toHaveLength(late.attempts);
    expect((tries.at(-1) ?? Infinity) - (tries[0] ?? 0)).toBeLessThanOrEqual(500 + 250);
    // Each wait is at most 100 ms, so it cannot have run far past its 500 ms (generous for a loaded machine).
    expect(Date.now() - started).toBeLessThan(10_000);

    // An abort while waiting (up to a minute here) ends at once, as an abort.
    const controller = new AbortController();
    const calls = countingFetch();
    const slow = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      fetch: calls.fetch,
      retry: { baseMs: 60_000, capMs: 60_000, forMs: 600_000 },
    });
    const aborted = slow.run(chat, { signal: controller.signal }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(calls.count('GET', /^\/v1\/models\//)).toBe(1));
    controller.abort();
    expect(await aborted).toMatchObject({ code: 'ABORTED' });
  });

  it('retries a creation only when it surely reached nothing, or was answered 503', () => {
    const failed = (cause: Error, status = 0) => new CoordinatorUnavailableError('http://c', 'creating the job', status, { cause });
    const net = (message: string, fields: Record<string, string>) => Object.assign(new Error(message), fields);
    const fetchFailed = (cause: Error) => failed(new TypeError('fetch failed', { cause }));
    expect(mayRetryCreate(fetchFailed(net('connect ECONNREFUSED', { code: 'ECONNREFUSED', syscall: 'connect' })))).toBe(true);
    expect(mayRetryCreate(fetchFailed(net('connect ECONNRESET', { code: 'ECONNRESET', syscall: 'connect' })))).toBe(true);
    expect(mayRetryCreate(failed(net('the requester channel closed before the request was sent', { code: NOT_SENT })))).toBe(true);
    expect(mayRetryCreate(failed(new Error('HTTP 503'), 503))).toBe(true);
    // Sent, then cut off: the job may exist; tried again only under an idempotency key.
    expect(mayRetryCreate(fetchFailed(net('read ECONNRESET', { code: 'ECONNRESET', syscall: 'read' })))).toBe(false);
    expect(mayRetryCreate(fetchFailed(net('other side closed', { code: 'UND_ERR_SOCKET' })))).toBe(false);
    expect(mayRetryCreate(failed(new Error('the requester channel closed (1006)')))).toBe(false);
    expect(mayRetryCreate(failed(new Error('HTTP 500'), 500))).toBe(false);
    expect(mayRetryCreate(fetchFailed(net('read ECONNRESET', { code: 'ECONNRESET', syscall: 'read' })), true)).toBe(true);
    expect(mayRetryCreate(failed(new Error('the requester channel closed (1006)')), true)).toBe(true);
    expect(mayRetryCreate(failed(new Error('HTTP 500'), 500), true)).toBe(false);
  });

  it('keeps every backoff within its capped, doubling ceiling', () => {
    const policy = { ...DEFAULT_RETRY, baseMs: 100, capMs: 1_000 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffMs(n, policy, () => 0.999_999))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffMs(3, policy, () => 0)).toBe(0);
  });
});
