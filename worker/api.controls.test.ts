/** The worker API's controls: saved across worker restarts, checked, and the wish to contribute kept until Stop. */
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../protocol/errors.ts';
import { type RuntimeParts, WorkerApi } from './api.ts';
import { MemoryControlsStore } from './controls/store.ts';

const noRuntime = (): RuntimeParts => {
  throw new Error('not needed here');
};

describe('worker API controls', () => {
  it('saves the rules, and a new worker (a reloaded tab) reads them back', async () => {
    const store = new MemoryControlsStore();
    const first = new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null });
    expect((await first.controls()).dutyCycle).toBe(100);
    await first.setControls({ dutyCycle: 25, schedule: [{ start: '22:00', end: '07:00' }], consent: ['chat'] });
    const second = new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null });
    expect(await second.controls()).toMatchObject({ dutyCycle: 25, schedule: [{ start: '22:00', end: '07:00' }], consent: ['chat'] });
  });

  it('refuses bad rules with a typed error and keeps the saved ones', async () => {
    const store = new MemoryControlsStore();
    const api = new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null });
    await expect(api.setControls({ dutyCycle: 10 as 25 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(api.setControls({ schedule: [{ start: '7am', end: '9am' }] })).rejects.toThrow(/HH:MM/);
    expect((await api.controls()).dutyCycle).toBe(100);
  });

  it('resumes only when the owner had started; an explicit Stop clears the wish', async () => {
    const store = new MemoryControlsStore();
    const api = new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null });
    expect(await api.resumeContributing({ coordinatorUrl: 'http://127.0.0.1:1' })).toBeNull();
    store.saved = { ...store.saved, contributing: true };
    const reloaded = new WorkerApi(noRuntime, { controlsStore: () => store, locks: () => null });
    expect(await reloaded.wantsToContribute()).toBe(true);
    expect(await reloaded.stopContributing()).toBeNull();
    expect(store.saved.contributing).toBe(false);
    expect(await reloaded.wantsToContribute()).toBe(false);
  });

  it('checks signals from the page', async () => {
    const api = new WorkerApi(noRuntime, { controlsStore: () => new MemoryControlsStore(), locks: () => null });
    expect(() => api.setSignals({ battery: { charging: true, level: 7 } })).toThrow(InvalidInputError);
    expect(() => api.setSignals({ visibility: 'hidden', idle: 'denied' })).not.toThrow();
  });
});
