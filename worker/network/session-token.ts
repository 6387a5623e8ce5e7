/**
 * The session token a worker's hello carries (a wallet's or an enrollment's; docs/protocol.md,
 * `hello.session`). The coordinator reads it once per connection, so a token that changes while
 * connected means saying hello again on a fresh socket.
 */
export class SessionToken {
  /** The token the next hello carries. */
  #current: string | undefined;
  /** The token the hello of the current socket carried. */
  #sent: string | undefined;
  /** The socket is being replaced to say hello with a new token: its close is not an error. */
  #renewing = false;

  constructor(token: string | undefined) {
    this.#current = token;
  }

  /** Uses `token` from now on; false when it is the one in force already. */
  set(token: string | undefined): boolean {
    if (token === this.#current) return false;
    this.#current = token;
    return true;
  }

  /** The token for the hello about to be sent, remembered as the socket's. */
  forHello(): string | undefined {
    this.#sent = this.#current;
    return this.#sent;
  }

  /** Whether a welcomed socket's hello carried another token than the one in force. */
  stale(welcomed: boolean): boolean {
    return welcomed && this.#sent !== this.#current;
  }

  /** The socket is closed on purpose to say hello again. */
  renew(): void {
    this.#renewing = true;
  }

  /** The socket closed: whether it was closed to renew the hello (asked once per close). */
  closedToRenew(): boolean {
    const renewing = this.#renewing;
    this.#renewing = false;
    return renewing;
  }
}
