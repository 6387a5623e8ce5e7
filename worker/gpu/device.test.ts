import { describe, expect, it } from 'vitest';
import { DeviceLostError, SpinneretError, WebGPUUnavailableError } from '../../protocol/errors.ts';
import { GpuDeviceManager, type DeviceLossInfo, type DeviceRestoredInfo } from './device.ts';
import { FakeDevice, FakeGpu, SWIFTSHADER_LIKE } from './fake-gpu.ts';

/** Lets `device.lost` handlers and the recovery they start run. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

function setup(gpu = new FakeGpu(), options: { now?: () => number } = {}) {
  const mgr = new GpuDeviceManager({ gpu: gpu.asGpu(), ...options });
  const lost: DeviceLossInfo[] = [];
  const restored: DeviceRestoredInfo[] = [];
  mgr.onLost((e) => lost.push(e));
  mgr.onRestored((e) => restored.push(e));
  return { gpu, mgr, lost, restored };
}

/** The fake behind a device the manager handed out. */
function fake(device: GPUDevice): FakeDevice {
  expect(device).toBeInstanceOf(FakeDevice);
  return device as unknown as FakeDevice;
}

describe('GpuDeviceManager', () => {
  it('creates one device on first use, shared by concurrent callers', async () => {
    const { gpu, mgr } = setup(new FakeGpu(SWIFTSHADER_LIKE, 10));
    expect(mgr.generation).toBe(0);
    expect(mgr.info()).toBeNull();
    const [a, b] = await Promise.all([mgr.device(), mgr.device()]);
    expect(a).toBe(b);
    expect(gpu.requestAdapterCalls).toBe(1);
    expect(mgr.generation).toBe(1);
    expect(mgr.info()?.architecture).toBe('swiftshader');
  });

  it('asks for the adapter maximum buffer limits, and shader-f16 only where offered', async () => {
    const { mgr } = setup();
    const d = fake(await mgr.device());
    expect(d.descriptor.requiredFeatures).toEqual([]);
    expect(d.descriptor.requiredLimits).toMatchObject({
      maxBufferSize: 1024 ** 3,
      maxStorageBufferBindingSize: 1024 ** 3,
    });

    const f16 = setup(new FakeGpu({ ...SWIFTSHADER_LIKE, features: ['shader-f16', 'subgroups'] }));
    expect(fake(await f16.mgr.device()).descriptor.requiredFeatures).toEqual(['shader-f16']);
  });

  it('recovers from device.destroy() by someone else with a device from a NEW adapter', async () => {
    const { gpu, mgr, lost, restored } = setup();
    const first = await mgr.device();
    first.destroy();
    await settle();
    expect(lost).toEqual([{ reason: 'destroyed', message: 'destroy() was called outside dispose()', generation: 1, recovering: true }]);
    expect(restored).toHaveLength(1);
    expect(restored[0]?.generation).toBe(2);
    expect(restored[0]?.info.vendor).toBe('google');
    const second = await mgr.device();
    expect(second).not.toBe(first);
    expect(fake(second).destroyed).toBe(false);
    expect(mgr.generation).toBe(2);
    // The lost device's adapter cannot make another device: a fresh one was requested.
    expect(gpu.requestAdapterCalls).toBe(2);
    expect(gpu.adapters[1]?.consumed).toBe(true);
  });

  it('never hands out a device destroyed a moment ago, even before its lost promise settles', async () => {
    const { gpu, mgr, lost } = setup(new FakeGpu(SWIFTSHADER_LIKE, 10));
    const first = await mgr.device();
    first.destroy();
    const [a, b] = await Promise.all([mgr.device(), mgr.device()]); // same tick as destroy()
    expect(a).not.toBe(first);
    expect(a).toBe(b);
    await settle();
    expect(lost).toHaveLength(1); // the later `lost` settling is not a second loss
    expect(gpu.devices).toHaveLength(2);
  });

  it('recovers from a driver loss (reason unknown) and keeps the label per generation', async () => {
    const { mgr, lost } = setup();
    fake(await mgr.device()).lose('unknown', 'TDR');
    await settle();
    expect(lost[0]).toMatchObject({ reason: 'unknown', message: 'TDR', generation: 1 });
    expect(fake(await mgr.device()).label).toBe('spinneret-2');
  });

  it('shares one recovery among callers that arrive while it runs', async () => {
    const { gpu, mgr, lost } = setup(new FakeGpu(SWIFTSHADER_LIKE, 30));
    const first = await mgr.device();
    const during: Promise<GPUDevice>[] = [];
    mgr.onLost(() => during.push(mgr.device())); // a listener asking at once gets the new one
    first.destroy();
    await first.lost;
    await Promise.resolve();
    during.push(mgr.device(), mgr.device(), mgr.device());
    const devices = await Promise.all(during);
    expect(lost).toHaveLength(1);
    expect(new Set(devices).size).toBe(1);
    expect(devices[0]).not.toBe(first);
    expect(gpu.requestAdapterCalls).toBe(2);
    expect(gpu.devices).toHaveLength(2);
    expect(mgr.generation).toBe(2);
  });

  it('does not recover from its own dispose(), and rejects device() afterwards', async () => {
    const { gpu, mgr, lost, restored } = setup();
    const d = fake(await mgr.device());
    mgr.dispose();
    await settle();
    expect(d.destroyed).toBe(true);
    expect(lost).toEqual([]);
    expect(restored).toEqual([]);
    expect(gpu.requestAdapterCalls).toBe(1);
    await expect(mgr.device()).rejects.toBeInstanceOf(SpinneretError);
  });

  it('destroys a device that arrives after dispose()', async () => {
    const { gpu, mgr } = setup(new FakeGpu(SWIFTSHADER_LIKE, 20));
    const pending = mgr.device();
    mgr.dispose();
    await expect(pending).rejects.toThrow(/disposed/);
    expect(gpu.devices[0]?.destroyed).toBe(true);
  });

  it('fails the callers of a failed recovery, and tries again on the next call', async () => {
    const { gpu, mgr, lost, restored } = setup();
    const first = await mgr.device();
    gpu.adapterResults.push('null');
    first.destroy();
    await first.lost;
    await Promise.resolve();
    expect(lost).toHaveLength(1);
    await expect(mgr.device()).rejects.toBeInstanceOf(WebGPUUnavailableError);
    expect(restored).toEqual([]);
    const next = await mgr.device();
    expect(next).not.toBe(first);
    expect(restored.map((r) => r.generation)).toEqual([2]);
    expect(gpu.requestAdapterCalls).toBe(3);
  });

  it('fails with WebGPUUnavailableError without navigator.gpu, and retries later', async () => {
    const none = new GpuDeviceManager({ gpu: undefined });
    await expect(none.device()).rejects.toBeInstanceOf(WebGPUUnavailableError);
    const { gpu, mgr } = setup();
    gpu.adapterResults.push('throw');
    await expect(mgr.device()).rejects.toThrow(/requestAdapter failed/);
    await expect(mgr.device()).resolves.toBeInstanceOf(FakeDevice);
  });

  it('stops recreating after too many losses within the window', async () => {
    let clock = 1_000_000;
    const { gpu, mgr, lost } = setup(new FakeGpu(), { now: () => clock });
    for (let i = 0; i < 3; i++) {
      (await mgr.device()).destroy();
      await settle();
      clock += 10_000;
    }
    expect(lost.map((l) => l.recovering)).toEqual([true, true, true]);
    (await mgr.device()).destroy();
    await settle();
    expect(lost.map((l) => l.recovering)).toEqual([true, true, true, false]);
    await expect(mgr.device()).rejects.toBeInstanceOf(DeviceLostError);
    expect(gpu.devices).toHaveLength(4);
  });

  it('forgets losses older than the window', async () => {
    let clock = 0;
    const { mgr, lost } = setup(new FakeGpu(), { now: () => clock });
    for (let i = 0; i < 6; i++) {
      (await mgr.device()).destroy();
      await settle();
      clock += 30_000;
    }
    expect(lost.every((l) => l.recovering)).toBe(true);
    expect(mgr.generation).toBe(7);
  });

  it('keeps recovering when a listener throws, and unsubscribes', async () => {
    const { mgr, restored } = setup();
    const unsubscribe = mgr.onLost(() => {
      throw new Error('listener bug');
    });
    const seen: number[] = [];
    const off = mgr.onRestored((e) => seen.push(e.generation));
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      (await mgr.device()).destroy();
      await settle();
    } finally {
      console.error = original;
    }
    expect(errors).toHaveLength(1);
    expect(restored).toHaveLength(1);
    unsubscribe();
    off();
    (await mgr.device()).destroy();
    await settle();
    expect(seen).toEqual([2]);
    expect(restored).toHaveLength(2);
  });
});
