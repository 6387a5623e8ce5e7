import { describe, expect, it } from 'vitest';
import { coordinatorsClosedAfterEach } from '../../testing/coordinators.ts';

const start = coordinatorsClosedAfterEach();

const OPERATOR = 'operator-token-for-tests-0123456789';

describe('API keys, listed and revoked by the operator', () => {
  it('lists keys without their secrets and revokes one at once; only the operator may', async () => {
    const c = await start({ operatorToken: OPERATOR });
    const op = (method: string, path: string, token = OPERATOR) =>
      fetch(c.url + path, { method, headers: { authorization: `Bearer ${token}` } });
    expect((await c.api('GET', '/v1/account')).status).not.toBe(401);
    const listed = await op('GET', '/v1/operator/keys');
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(text).not.toContain(c.auth.slice('Bearer '.length));
    const { keys } = JSON.parse(text) as { keys: Array<{ id: string; label: string; revokedAt: number | null }> };
    const key = keys.find((k) => k.label === 'test');
    expect(key).toMatchObject({ revokedAt: null });
    // A requester's key, or none, cannot list or revoke.
    expect((await op('GET', '/v1/operator/keys', c.auth.slice('Bearer '.length))).status).toBe(401);
    expect((await fetch(`${c.url}/v1/operator/keys/${key!.id}`, { method: 'DELETE' })).status).toBe(401);
    const revoked = await op('DELETE', `/v1/operator/keys/${key!.id}`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ id: key!.id, revoked: true });
    // No waiting for a cache to expire: the next request is refused.
    expect((await c.api('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: { inputTokens: 1, maxOutputTokens: 1 } })).status).toBe(
      401,
    );
    expect((await op('DELETE', '/v1/operator/keys/nope')).status).toBe(404);
  });

  it('serves no operator key routes without an operator token', async () => {
    const c = await start();
    // The requester routes answer instead: a bearer that is no API key is refused.
    expect((await fetch(`${c.url}/v1/operator/keys`, { headers: { authorization: 'Bearer x' } })).status).toBe(401);
    expect((await c.api('GET', '/v1/operator/keys')).status).toBe(404);
  });
});
