import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, Connection, type ConnectionEvents, type SocketLike } from './connection.ts';
import { ManualClock } from './manual-clock.ts';

type Listener = (event: unknown) => void;

class FakeSocket implements SocketLike {
  static made: FakeSocket[] = [];
  readyState = 0;
  readonly sent: string[] = [];
  readonly #listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  addEventListener(type: string, listener: (event: never) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener as Listener]);
  }

  send(data: string): void {
    this.sent.push(data);
  }

  close(code = 1000, reason = ''): void {
    this.drop(code, reason);
  }

  open(): void {
    this.readyState = 1;
    this.fire('open', {});
  }

  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.fire('error', {});
    this.fire('close', { code, reason });
  }

  fire(type: string, event: unknown): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}

function setup(events: Partial<ConnectionEvents> = {}, random = () => 0.5) {
  FakeSocket.made = [];
  const clock = new ManualClock();
  const handlers = { onOpen: vi.fn(), onMessage: vi.fn(), onInvalid: vi.fn(), onClose: vi.fn(), onError: vi.fn(), ...events };
  const connection = new Connection(
    { url: 'ws://coordinator', webSocket: FakeSocket, clock, random, backoff: { baseMs: 500, capMs: 30_000, stableMs: 10_000 } },
    handlers,
  );
  const socket = (i: number): FakeSocket => {
    const s = FakeSocket.made[i];
    if (s === undefined) throw new Error(`socket ${i} was not made`);
    return s;
  };
  return { clock, handlers, connection, socket };
}

describe('backoffDelay', () => {
  it('is full jitter under a ceiling that doubles up to the cap', () => {
    const options = { baseMs: 500, capMs: 30_000, stableMs: 0 };
    expect(backoffDelay(0, () => 0, options)).toBe(0);
    expect(backoffDelay(0, () => 0.5, options)).toBe(250);
    expect(backoffDelay(3, () => 0.5, options)).toBe(2000);
    expect(backoffDelay(3, () => 0.999999, options)).toBeLessThan(4000);
    expect(backoffDelay(20, () => 0.5, options)).toBe(15_000);
    expect(backoffDelay(5000, () => 0.5, options)).toBe(15_000);
  });
});

describe('Connection', () => {
  it('reconnects with growing delays, and a stable connection resets them', () => {
    const { clock, handlers, connection, socket } = setup();
    connection.start();
    socket(0).drop();
    expect(handlers.onClose).toHaveBeenLastCalledWith({ code: 1006, reason: '', retryInMs: 250, attempts: 1 });
    clock.advance(249);
    expect(FakeSocket.made).toHaveLength(1);
    clock.advance(1);
    expect(FakeSocket.made).toHaveLength(2);
    socket(1).drop();
    expect(handlers.onClose).toHaveBeenLastCalledWith(expect.objectContaining({ retryInMs: 500, attempts: 2 }));
    clock.advance(500);
    socket(2).open();
    clock.advance(9_999);
    socket(2).drop();
    expect(handlers.onClose).toHaveBeenLastCalledWith(expect.objectContaining({ retryInMs: 1000, attempts: 3 }));
    clock.advance(1000);
    socket(3).open();
    clock.advance(10_000);
    expect(connection.attempts).toBe(0);
    socket(3).drop();
    expect(handlers.onClose).toHaveBeenLastCalledWith(expect.objectContaining({ retryInMs: 250, attempts: 1 }));
  });

  it('waits exactly the announced delay after a drain, without growing the backoff', () => {
    const { clock, handlers, connection, socket } = setup();
    connection.start();
    socket(0).open();
    connection.delayNextConnect(7000);
    socket(0).drop(1001, 'draining');
    expect(handlers.onClose).toHaveBeenLastCalledWith({ code: 1001, reason: 'draining', retryInMs: 7000, attempts: 0 });
    clock.advance(6999);
    expect(FakeSocket.made).toHaveLength(1);
    clock.advance(1);
    expect(FakeSocket.made).toHaveLength(2);
  });

  it('parses frames, reports bad ones, and survives a throwing handler', () => {
    const onInvalid = vi.fn<ConnectionEvents['onInvalid']>();
    const { handlers, connection, socket } = setup({
      onMessage: vi.fn(() => {
        throw new Error('handler bug');
      }),
      onInvalid,
    });
    connection.start();
    socket(0).open();
    socket(0).fire('message', { data: JSON.stringify({ v: 1, type: 'pong', t: 5 }) });
    expect(handlers.onMessage).toHaveBeenCalledWith({ v: 1, type: 'pong', t: 5 });
    expect(handlers.onError).toHaveBeenCalledWith(new Error('handler bug'));
    socket(0).fire('message', { data: '{not json' });
    socket(0).fire('message', { data: JSON.stringify({ v: 2, type: 'pong', t: 5 }) });
    socket(0).fire('message', { data: new ArrayBuffer(4) });
    expect(onInvalid.mock.calls.map(([e]) => e.code)).toEqual(['BAD_MESSAGE', 'PROTOCOL_VERSION', 'BAD_MESSAGE']);
    expect(connection.open).toBe(true);
  });

  it('sends only on an open socket and refuses frames over the limit', () => {
    const { connection, socket } = setup();
    const ping = { v: 1, type: 'ping', t: 1 } as const;
    connection.start();
    expect(connection.send(ping)).toBe('closed');
    socket(0).open();
    expect(connection.send(ping)).toBe('sent');
    expect(socket(0).sent).toEqual([JSON.stringify(ping)]);
    connection.maxMessageBytes = 10;
    expect(connection.send(ping)).toBe('too-large');
  });

  it('retries when the socket cannot even be made, and stop() ends it for good', () => {
    const clock = new ManualClock();
    let tries = 0;
    const Failing = class extends FakeSocket {
      constructor(url: string) {
        super(url);
        if (++tries < 3) throw new SyntaxError('bad url');
      }
    };
    const onClose = vi.fn();
    const connection = new Connection(
      { url: 'x', webSocket: Failing, clock, random: () => 1 },
      { onOpen: vi.fn(), onMessage: vi.fn(), onInvalid: vi.fn(), onClose },
    );
    connection.start();
    clock.advance(500 + 1000);
    expect(tries).toBe(3);
    expect(onClose).toHaveBeenCalledTimes(2);
    connection.stop();
    clock.advance(60_000);
    expect(tries).toBe(3);
  });
});
