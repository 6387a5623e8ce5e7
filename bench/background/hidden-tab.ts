/**
 * A Chromium driven straight over the DevTools protocol, for truly hidden tabs. Playwright
 * keeps every page it drives `visible` (focus emulation), even minimized; here nothing
 * emulates focus, so minimizing the window makes `document.visibilityState` `hidden` and the
 * browser throttles the tab as it would for a person (see PLATFORM.md, "Hidden tabs").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/chromium.ts';

interface Pending {
  resolve: (value: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

/** One DevTools WebSocket: numbered commands, replies matched by id, sessions for targets. */
class CdpConnection {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, Pending>();
  #id = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (message.id === undefined) return;
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error !== undefined) pending?.reject(new Error(`DevTools: ${message.error.message}`));
      else pending?.resolve(message.result ?? {});
    });
  }

  static async open(url: string): Promise<CdpConnection> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new CdpConnection(socket);
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify({ id, method, params, ...(sessionId !== undefined && { sessionId }) }));
    });
  }

  close(): void {
    this.#socket.close();
  }
}

/** A tab of the browser, attached with its own session. */
export class Tab {
  readonly #cdp: CdpConnection;
  readonly #session: string;
  readonly targetId: string;

  constructor(cdp: CdpConnection, session: string, targetId: string) {
    this.#cdp = cdp;
    this.#session = session;
    this.targetId = targetId;
  }

  /** Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON. */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = (await this.#cdp.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, this.#session)) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (reply.exceptionDetails !== undefined)
      throw new Error(`In the page: ${reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text}`);
    return reply.result.value as T;
  }

  /** Polls `expression` until it is truthy, or throws after `timeoutMs`; errors while the page loads count as not yet. */
  async waitFor(expression: string, timeoutMs = 120_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last: unknown = null;
    for (;;) {
      try {
        if (await this.evaluate<boolean>(`Boolean(${expression})`)) return;
      } catch (err) {
        // "Cannot find default execution context" while the page navigates.
        last = err;
      }
      if (Date.now() > end) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${expression}`, { cause: last });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  visibility(): Promise<string> {
    return this.evaluate<string>('document.visibilityState');
  }

  /** Minimizes the tab's window: the page becomes hidden. */
  async hide(): Promise<void> {
    const { windowId } = (await this.#cdp.send('Browser.getWindowForTarget', { targetId: this.targetId })) as { windowId: number };
    await this.#cdp.send('Browser.setWindowBounds', { windowId, bounds: { windowState: 'minimized' } });
  }

  /** Restores the window: the page becomes visible again. */
  async show(): Promise<void> {
    const { windowId } = (await this.#cdp.send('Browser.getWindowForTarget', { targetId: this.targetId })) as { windowId: number };
    await this.#cdp.send('Browser.setWindowBounds', { windowId, bounds: { windowState: 'normal' } });
  }
}

export interface HiddenTabBrowser {
  open(url: string): Promise<Tab>;
  close(): Promise<void>;
}

/** Launches Debian's Chromium headless with a DevTools port and a throwaway profile. */
export async function launchChromium(): Promise<HiddenTabBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'spinneret-cdp-'));
  const child: ChildProcess = spawn(
    ensureChromium(),
    [...CHROMIUM_ARGS, '--headless', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=1024,768', 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`Chromium did not open its DevTools port within 30 s:\n${text}`)), 30_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`Chromium exited (code ${code}) before opening its DevTools port:\n${text}`)));
  });
  const cdp = await CdpConnection.open(url);
  return {
    async open(pageUrl) {
      // A new window per tab, so minimizing it hides exactly this page.
      const { targetId } = (await cdp.send('Target.createTarget', { url: pageUrl, newWindow: true })) as { targetId: string };
      const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
      return new Tab(cdp, sessionId, targetId);
    },
    async close() {
      await cdp.send('Browser.close').catch(() => undefined);
      cdp.close();
      await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
