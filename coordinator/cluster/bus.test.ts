/**
 * The replicas' bus on a real NATS server: a body that is not JSON, or not of its subject's
 * schema, is dropped and counted, and logged with its reason, at most one line per subject
 * every `DROP_LOG_MS` however many arrive (the next line says how many were not logged), so a
 * client flooding a subject cannot flood the replica's log.
 */
import { connect } from '@nats-io/transport-node';
import * as v from 'valibot';
import { afterAll, describe, expect, it } from 'vitest';
import { NATS_URL, until } from '../../testing/cluster.ts';
import { uniqueSchema } from '../store/testing.ts';
import { connectBus } from './bus.ts';

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

describe('the replicas’ bus', () => {
  it('drops what is not of a subject’s schema, counts each, and logs a line per subject now and then', { timeout: 30_000 }, async () => {
    const subject = `spinneret.${uniqueSchema('bus')}.r.a.holds`;
    const logged: string[] = [];
    const bus = await connectBus(NATS_URL, 'test-bus', (message) => logged.push(message));
    const nc = await connect({ servers: NATS_URL });
    cleanup.push(
      () => bus.close(),
      () => nc.close(),
    );
    const handled: string[] = [];
    bus.subscribe(subject, v.strictObject({ jobId: v.string() }), (m) => handled.push(m.jobId));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the subscription reaches the server

    for (let i = 0; i < 500; i++) nc.publish(subject, JSON.stringify({ jobId: i }));
    for (let i = 0; i < 500; i++) nc.publish(subject, `not json ${i}`);
    nc.publish(subject, JSON.stringify({ jobId: 'fine' }));
    await nc.flush();
    await until('every message read', () => (handled.length === 1 ? true : undefined), 10_000);
    expect(handled).toEqual(['fine']);
    expect(bus.dropped).toBe(1000);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^dropped a malformed message on spinneret\.\S+\.holds$/);
  });
});
