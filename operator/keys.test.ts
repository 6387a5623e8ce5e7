/**
 * `spinneret coordinator keys list|revoke` as an operator runs it (`node bin/spinneret.js` in a
 * child process) against a running coordinator's operator routes: the list names every key
 * and no secret, a revoke is refused at once afterwards, and a missing token, a wrong one, a bad
 * id or an unknown one are clear refusals with their exit codes.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator/testing.ts';

const OPERATOR = 'operator-token-for-the-cli-0123456789';

/** Runs the command without blocking this process (the coordinator answers from here). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/spinneret.js', 'coordinator', 'keys', ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

type Started = Awaited<ReturnType<typeof startCoordinator>>;
let c: Started;
let other: { id: string; secret: string; depositMemo: string };

beforeAll(async () => {
  c = await startCoordinator({ operatorToken: OPERATOR });
  other = await c.coordinator.createApiKey('second requester', { jobsPerMinute: 60, maxInFlight: 2 });
});
afterAll(async () => {
  await c.close();
});

describe('spinneret coordinator keys', () => {
  const env = { SPINNERET_OPERATOR_TOKEN: OPERATOR };

  it('lists every key without a secret, and revokes one so that its next request is refused', { timeout: 120_000 }, async () => {
    const listed = await cli(['list', '--url', c.url], env);
    expect(listed.stderr).toBe('');
    expect(listed.status).toBe(0);
    const lines = listed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+LABEL\s+JOBS\/MIN\s+IN FLIGHT\s+DEPOSIT MEMO\s+CREATED\s+REVOKED$/);
    const row = lines.find((l) => l.startsWith(other.id));
    expect(row).toMatch(
      new RegExp(`^${other.id}\\s+second requester\\s+60\\s+2\\s+${other.depositMemo}\\s+\\d{4}-\\d\\d-\\d\\dT\\S+\\s+-$`),
    );
    expect(lines.some((l) => /\s+test\s+1000\s+1000\s/.test(l))).toBe(true);
    for (const secret of [other.secret, c.auth.slice('Bearer '.length), OPERATOR]) expect(listed.stdout).not.toContain(secret);

    const bearer = { authorization: `Bearer ${other.secret}` };
    // An authenticated request for a job that is not there: 404, not 401.
    const probe = () => fetch(`${c.url}/v1/jobs/no-such-job/events`, { headers: bearer });
    expect((await probe()).status).toBe(404);
    const revoked = await cli(['revoke', other.id, '--url', c.url], env);
    expect(revoked.stderr).toBe('');
    expect(revoked).toMatchObject({ status: 0, stdout: `revoked ${other.id}\n` });
    expect((await probe()).status).toBe(401);

    const json = await cli(['list', '--json', '--url', c.url], env);
    expect(json.status).toBe(0);
    const keys = JSON.parse(json.stdout) as Array<{ id: string; revokedAt: number | null }>;
    expect(keys.find((k) => k.id === other.id)?.revokedAt).toEqual(expect.any(Number));
    expect(keys.filter((k) => k.revokedAt === null)).toHaveLength(1);
  });

  it('refuses without the operator token, with a wrong one, a bad id or an unknown one', { timeout: 120_000 }, async () => {
    const none = await cli(['list', '--url', c.url]);
    expect(none.status).toBe(78);
    expect(none.stderr).toContain('operatorToken: required');
    const wrong = await cli(['list', '--url', c.url], { SPINNERET_OPERATOR_TOKEN: 'not-the-operator-token-at-all' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('UNAUTHORIZED');
    expect(wrong.stdout).toBe('');
    const bad = await cli(['revoke', 'a\u0001b', '--url', c.url], env);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('expected a key id');
    const unknown = await cli(['revoke', 'no-such-key', '--url', c.url], env);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('NOT_FOUND');
    const usage = await cli(['rotate'], env);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('Usage: spinneret coordinator keys list');
    const down = await cli(['list', '--url', 'http://127.0.0.1:9'], env);
    expect(down.status).toBe(1);
    expect(down.stderr).toContain('not reachable');
  });
});
