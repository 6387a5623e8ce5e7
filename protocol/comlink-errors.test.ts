import { expose, wrap } from 'comlink';
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { installErrorTransfer } from './comlink-errors.ts';
import { IntegrityError, InvalidInputError, SpinneretError, reviveError, serializeError } from './errors.ts';

const ports: { close(): void }[] = [];
afterEach(() => ports.splice(0).forEach((p) => p.close()));

function connect<T extends object>(api: T) {
  installErrorTransfer();
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  // Node's MessagePort is an EventTarget with the same postMessage/start shape as a browser port.
  expose(api, port1 as unknown as Parameters<typeof expose>[1]);
  return wrap<T>(port2 as unknown as Parameters<typeof wrap>[0]);
}

describe('errors across the worker boundary', () => {
  it('keep their class, code, message and details', async () => {
    const remote = connect({
      fail(): void {
        throw new IntegrityError('https://h/model.onnx', 'a'.repeat(64), 'b'.repeat(64));
      },
    });
    const err: unknown = await remote.fail().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toBeInstanceOf(SpinneretError);
    expect((err as IntegrityError).code).toBe('INTEGRITY');
    expect((err as IntegrityError).name).toBe('IntegrityError');
    expect((err as IntegrityError).message).toMatch(/failed its integrity check/);
    expect((err as IntegrityError).details).toMatchObject({ url: 'https://h/model.onnx' });
  });

  it('turn unexpected errors into INTERNAL without losing the message', async () => {
    const remote = connect({
      async fail(): Promise<void> {
        throw new RangeError('index out of range');
      },
    });
    const err: unknown = await remote.fail().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpinneretError);
    expect((err as SpinneretError).code).toBe('INTERNAL');
    expect((err as SpinneretError).message).toBe('index out of range');
  });
});

describe('serializeError / reviveError', () => {
  it('round-trip every subclass', () => {
    const original = new InvalidInputError('bad shape', { input: 'x' });
    const revived = reviveError(JSON.parse(JSON.stringify(serializeError(original))) as ReturnType<typeof serializeError>);
    expect(revived).toBeInstanceOf(InvalidInputError);
    expect(revived.details).toEqual({ input: 'x' });
  });

  it('map an unknown code to INTERNAL', () => {
    const revived = reviveError({ name: 'X', code: 'NOPE' as 'INTERNAL', message: 'm' });
    expect(revived.code).toBe('INTERNAL');
  });
});
