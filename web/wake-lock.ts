/**
 * The page's one screen wake lock (the Settings card's keep-alive, kiosk mode): held while
 * wanted and the tab is visible, asked for again when the tab comes back (the browser drops it
 * on hiding), let go when no longer wanted. Says what happened through `onState`.
 */

/** `held`: the screen stays on; `released`: the browser let it go (tab hidden); `denied`: refused; `unsupported`: no Screen Wake Lock API. */
export type WakeState = 'held' | 'released' | 'denied' | 'unsupported';

export class ScreenWakeLock {
  /** False where the browser has no Screen Wake Lock API. */
  readonly supported = typeof navigator !== 'undefined' && 'wakeLock' in navigator;
  readonly #onState: (state: WakeState, detail: string) => void;
  readonly #stop = new AbortController();
  #wanted = false;
  #sentinel: WakeLockSentinel | null = null;
  #asking = false;

  constructor(onState: (state: WakeState, detail: string) => void = () => undefined) {
    this.#onState = onState;
    if (!this.supported) return;
    document.addEventListener('visibilitychange', () => this.#sync(), { signal: this.#stop.signal });
  }

  /** Wants the screen kept on (true) or no longer (false); returns {@link supported}. */
  set(on: boolean): boolean {
    this.#wanted = on;
    if (!this.supported) this.#onState('unsupported', '');
    else this.#sync();
    return this.supported;
  }

  /** Lets the lock go and stops watching the tab. */
  stop(): void {
    this.set(false);
    this.#stop.abort();
  }

  #sync(): void {
    const held = this.#sentinel !== null && !this.#sentinel.released;
    if (this.#wanted && !held && !this.#asking && document.visibilityState === 'visible') {
      // Fire and forget: #acquire reports its own failure through onState.
      this.#asking = true;
      void this.#acquire().finally(() => (this.#asking = false));
    } else if (!this.#wanted && this.#sentinel !== null) {
      const sentinel = this.#sentinel;
      this.#sentinel = null;
      sentinel.release().catch(() => undefined);
    }
  }

  async #acquire(): Promise<void> {
    try {
      const sentinel = await navigator.wakeLock.request('screen');
      sentinel.addEventListener('release', () => this.#onState('released', ''));
      this.#sentinel = sentinel;
      this.#onState('held', '');
      // Let go at once when it stopped being wanted while asked for.
      if (!this.#wanted) this.#sync();
    } catch (err) {
      this.#onState('denied', err instanceof Error ? err.message : String(err));
    }
  }
}
