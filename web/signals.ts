/**
 * What only the page can see, forwarded to the worker's job loop: whether the tab is visible,
 * the battery (the Battery Status API is not available in workers), and whether the user is
 * idle (the Idle Detection API, which needs permission asked from a click). Also the optional
 * keep-alive: a screen wake lock while the tab is visible (./wake-lock.ts).
 */
import type { Signals } from '../worker/controls/rules.ts';
import { ScreenWakeLock } from './wake-lock.ts';

/** The Battery Status API's manager (not in TypeScript's DOM types). */
interface BatteryManagerLike extends EventTarget {
  readonly charging: boolean;
  /** 0–1. */
  readonly level: number;
}

/** The Idle Detection API (not in TypeScript's DOM types). */
interface IdleDetectorLike extends EventTarget {
  readonly userState: 'active' | 'idle' | null;
  readonly screenState: 'locked' | 'unlocked' | null;
  start(options: { threshold: number; signal?: AbortSignal }): Promise<void>;
}
interface IdleDetectorClass {
  new (): IdleDetectorLike;
  requestPermission(): Promise<'granted' | 'denied'>;
}

/** How often visibility is read again besides its event, ms. */
const VISIBILITY_POLL_MS = 5000;

/** The user counts as idle after this long without input, ms (the API's minimum is one minute). */
const IDLE_THRESHOLD_MS = 60_000;

export interface SignalsFeed {
  /** The signals as last sent. */
  current(): Signals;
  /** Asks for idle-detection permission; call from a click. Resolves to the new idle signal. */
  askIdle(): Promise<Signals['idle']>;
  /** Holds a screen wake lock while the tab is visible (on), or lets it go (off); false where unsupported. */
  keepAlive(on: boolean): boolean;
  stop(): void;
}

/** Starts feeding signals to `send` (each call is a partial update) and calls `onChange` after each. */
export function startSignals(
  send: (update: Partial<Signals>) => void,
  onChange: (signals: Signals) => void = () => undefined,
): SignalsFeed {
  const state: Signals = { visibility: document.visibilityState === 'hidden' ? 'hidden' : 'visible', battery: null, idle: 'unknown' };
  const stop = new AbortController();
  const update = (change: Partial<Signals>): void => {
    Object.assign(state, change);
    send(change);
    onChange({ ...state });
  };
  update({ visibility: state.visibility });

  const wakeLock = new ScreenWakeLock();

  const readVisibility = (): void => {
    const visibility = document.visibilityState === 'hidden' ? 'hidden' : 'visible';
    if (visibility === state.visibility) return;
    update({ visibility });
  };
  document.addEventListener('visibilitychange', readVisibility, { signal: stop.signal });
  // A check now and then as well, for a change whose event was missed (a frozen and resumed page).
  const poll = setInterval(readVisibility, VISIBILITY_POLL_MS);
  stop.signal.addEventListener('abort', () => clearInterval(poll));

  const getBattery = (navigator as Navigator & { getBattery?: () => Promise<BatteryManagerLike> }).getBattery;
  if (typeof getBattery === 'function') {
    getBattery.call(navigator).then(
      (battery) => {
        const read = (): void => update({ battery: { charging: battery.charging, level: battery.level } });
        read();
        for (const type of ['chargingchange', 'levelchange']) battery.addEventListener(type, read, { signal: stop.signal });
      },
      () => update({ battery: null }),
    );
  } else {
    update({ battery: null });
  }

  const Detector = (globalThis as { IdleDetector?: IdleDetectorClass }).IdleDetector;
  const watchIdle = async (): Promise<void> => {
    if (Detector === undefined) return;
    const detector = new Detector();
    const read = (): void => update({ idle: detector.userState === 'idle' || detector.screenState === 'locked' ? 'idle' : 'active' });
    detector.addEventListener('change', read, { signal: stop.signal });
    await detector.start({ threshold: IDLE_THRESHOLD_MS, signal: stop.signal });
    read();
  };
  if (Detector === undefined) {
    update({ idle: 'unsupported' });
  } else {
    // Permission given on an earlier visit: watch at once; denied: say so; else wait for a click.
    navigator.permissions
      .query({ name: 'idle-detection' as PermissionName })
      .then((status) => {
        if (status.state === 'granted') return watchIdle();
        if (status.state === 'denied') update({ idle: 'denied' });
      })
      .catch(() => undefined);
  }

  return {
    current: () => ({ ...state }),
    async askIdle() {
      if (Detector === undefined) {
        update({ idle: 'unsupported' });
        return state.idle;
      }
      try {
        if ((await Detector.requestPermission()) !== 'granted') update({ idle: 'denied' });
        else await watchIdle();
      } catch {
        update({ idle: 'denied' });
      }
      return state.idle;
    },
    keepAlive: (on) => wakeLock.set(on),
    stop() {
      stop.abort();
      wakeLock.stop();
    },
  };
}
