import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { batchedWrites } from './batched-writes.ts';

/** A socket stand-in that records each write it gets from the stream machinery: one entry per system call it would make. */
class RecordingSocket extends Duplex {
  readonly writes: string[][] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.writes.push([chunk.toString()]);
    done();
  }

  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    this.writes.push(chunks.map((c) => c.chunk.toString()));
    done();
  }

  override _read(): void {}
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('batchedWrites', () => {
  it('sends the frames of one turn in one write, in order, and the next turn’s in the next', async () => {
    const socket = new RecordingSocket();
    const write = batchedWrites(socket);
    for (const frame of ['a', 'b', 'c']) write(() => socket.write(frame));
    expect(socket.writes).toEqual([]); // held until the turn's I/O is done
    await turn();
    await turn();
    write(() => socket.write('d'));
    await turn();
    await turn();
    expect(socket.writes).toEqual([['a', 'b', 'c'], ['d']]);
  });

  it('writes nothing to a destroyed socket and does not throw', async () => {
    const socket = new RecordingSocket();
    const write = batchedWrites(socket);
    socket.destroy();
    let ran = false;
    write(() => (ran = true));
    await turn();
    expect(ran).toBe(true);
    expect(socket.writes).toEqual([]);
  });
});
