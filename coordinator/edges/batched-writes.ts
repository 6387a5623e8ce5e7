/**
 * Batched socket writes: every frame a socket is sent within one turn of the event loop goes
 * to the kernel in one write (the socket is corked at the first and uncorked when the turn's
 * I/O is done), so several assignments, events or job frames for one peer cost one system
 * call instead of one each. Frames and their order are unchanged; nothing waits longer than
 * the current turn.
 */
import type { Duplex } from 'node:stream';

/** Returns `write`: runs `send` (which writes frames to `socket`) inside the turn's cork. */
export function batchedWrites(socket: Duplex): (send: () => void) => void {
  let corked = false;
  const release = (): void => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  return (send) => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      setImmediate(release);
    }
    send();
  };
}
