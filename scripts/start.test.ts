/**
 * `npm start` as a user runs it (less the build): every part is a child process; killing one
 * is reported, that part comes back, and the others keep running with the same pids.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });

describe('npm start', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    // Its parts follow it within a second (stopWithSupervisor).
    if (child?.exitCode === null) child.kill('SIGKILL');
  });

  it('restarts a part that crashes while the others keep running', { timeout: 240_000 }, async () => {
    const ports = { app: await freePort(), modelhost: await freePort(), coordinator: await freePort(), gateway: await freePort() };
    child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
      env: {
        ...process.env,
        SPINNERET_SKIP_BUILD: '1',
        SPINNERET_HOME: mkdtempSync(join(tmpdir(), 'spinneret-start-')),
        SPINNERET_PORT: String(ports.app),
        SPINNERET_MODELHOST_PORT: String(ports.modelhost),
        SPINNERET_COORDINATOR_PORT: String(ports.coordinator),
        SPINNERET_GATEWAY_PORT: String(ports.gateway),
        DATABASE_URL: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    const raw: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        raw.push(line);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // the banner
        }
      });
    }
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    const waitFor = async (test: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 180_000) => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(test);
        if (found !== undefined) return found;
        if (Date.now() > until) throw new Error(`no ${what}; output:\n${raw.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const started = (part: string, restarts: number) => (l: Record<string, unknown>) =>
      l['service'] === 'start' && l['msg'] === 'part started' && l['part'] === part && l['restarts'] === restarts;

    await waitFor((l) => l['msg'] === 'local network ready', 'ready line');
    const pid = async (part: string, restarts = 0) => Number((await waitFor(started(part, restarts), `${part} start`))['childPid']);
    const before = { modelhost: await pid('modelhost'), coordinator: await pid('coordinator'), gateway: await pid('gateway') };
    expect((await fetch(`http://127.0.0.1:${ports.gateway}/healthz`)).ok).toBe(true);

    process.kill(before.gateway, 'SIGKILL');
    const report = await waitFor((l) => l['msg'] === 'part exited; restarting it', 'crash report', 30_000);
    expect(report).toMatchObject({ service: 'start', level: 'error', part: 'gateway', signal: 'SIGKILL', code: null });
    const again = await pid('gateway', 1);
    expect(again).not.toBe(before.gateway);
    await waitFor((l) => l['msg'] === 'part ready again' && l['part'] === 'gateway', 'gateway ready again', 60_000);
    expect((await fetch(`http://127.0.0.1:${ports.gateway}/healthz`)).ok).toBe(true);
    // The others never stopped.
    expect((await fetch(`http://127.0.0.1:${ports.coordinator}/readyz`)).ok).toBe(true);
    expect((await fetch(`http://127.0.0.1:${ports.modelhost}/manifest.json`)).ok).toBe(true);
    expect(lines.filter((l) => l['msg'] === 'part started' && l['part'] !== 'gateway').map((l) => l['childPid'])).toEqual(
      expect.arrayContaining([before.modelhost, before.coordinator]),
    );
    expect(lines.filter((l) => l['msg'] === 'part exited; restarting it')).toHaveLength(1);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const stopped = lines.filter((l) => l['msg'] === 'part stopped').map((l) => l['part']);
    expect(stopped.sort()).toEqual(['app', 'coordinator', 'demo', 'gateway', 'modelhost']);
  });
});
