/** The worker API as the page reaches it: through comlink over a real message port, its public methods and nothing else. */
import { expose, wrap } from 'comlink';
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { type RuntimeParts, WorkerApi } from './api.ts';
import { MemoryControlsStore } from './controls/store.ts';

const noRuntime = (): RuntimeParts => {
  throw new Error('not needed here');
};

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const { port1, port2 } of channels.splice(0)) {
    port1.close();
    port2.close();
  }
});

describe('worker API over comlink', () => {
  it('offers the page exactly its calls', () => {
    const names = Object.getOwnPropertyNames(WorkerApi.prototype).filter((name) => name !== 'constructor');
    expect(names.sort()).toEqual(
      [
        'benchmark',
        'cancel',
        'contributorStatus',
        'controls',
        'deviceKey',
        'evict',
        'gpuInfo',
        'init',
        'load',
        'loaded',
        'loseDevice',
        'models',
        'resumeContributing',
        'run',
        'setControls',
        'setSession',
        'setSignals',
        'signEnrollment',
        'startContributing',
        'status',
        'stopContributing',
        'unload',
        'wantsToContribute',
        'watchContributor',
      ].sort(),
    );
    expect(Object.keys(new WorkerApi(noRuntime, { locks: () => null }))).toEqual([]);
  });

  it('answers calls through a message port with its state kept between them', async () => {
    const channel = new MessageChannel();
    channels.push(channel);
    const store = new MemoryControlsStore();
    expose(new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null }), channel.port1 as never);
    const api = wrap<WorkerApi>(channel.port2 as never);
    expect(await api.wantsToContribute()).toBe(false);
    expect((await api.setControls({ dutyCycle: 50 })).dutyCycle).toBe(50);
    expect((await api.controls()).dutyCycle).toBe(50);
    expect(store.saved.controls.dutyCycle).toBe(50);
    expect(await api.cancel('no such call')).toBe(false);
    expect(await api.resumeContributing({ coordinatorUrl: 'http://127.0.0.1:1' })).toBeNull();
    await expect(api.status()).rejects.toThrow(/not initialised/);
  });
});
