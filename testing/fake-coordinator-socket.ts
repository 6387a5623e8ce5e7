/**
 * Test support (not used by the app): a Contributor against a scripted coordinator
 * (worker/network/fake-coordinator.ts) served on a local WebSocket server, as the job loop's
 * tests drive it.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { Contributor, type ContributorOptions } from '../worker/network/contributor.ts';
import type { FakeCoordinator } from '../worker/network/fake-coordinator.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';

/**
 * A contributor (not started) of a fresh identity, unless `options` name one, connecting to
 * `coordinator` over a WebSocket server of its own; `cleanups` stops it and closes the server.
 */
export async function contributorOnFake(
  coordinator: FakeCoordinator,
  options: Partial<ContributorOptions> & Pick<ContributorOptions, 'runtime'>,
  cleanups: Array<() => Promise<void>>,
): Promise<Contributor> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  server.on('connection', (ws) => {
    const session = coordinator.accept({ send: (frame) => ws.send(frame), close: (code, reason) => ws.close(code, reason) });
    ws.on('message', (data: Buffer) => session.receive(data.toString()));
    ws.on('close', () => session.markClosed());
  });
  const contributor = new Contributor({
    coordinatorUrl: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    identity: options.identity ?? (await loadOrCreateIdentity(new MemoryKeyStore())),
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
    ...options,
  });
  cleanups.push(async () => {
    await contributor.stop({ drain: false });
    for (const client of server.clients) client.terminate();
    server.close();
  });
  return contributor;
}
