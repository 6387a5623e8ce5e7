/** CPU and clock readings of the dispatch benchmark's server process, taken over IPC. */
import type { Child, CpuSample } from './ipc.ts';
import { epochMs, sleep } from './stats.ts';

/** Measures a child's and this process's CPU use between the window's start and end. */
export function cpuMeter(child: Child, windowStart: number, windowEnd: number): () => Promise<{ server: number; driver: number }> {
  const samples: { child: CpuSample; driver: number; at: number }[] = [];
  const take = async (): Promise<void> => {
    const driver = process.cpuUsage();
    const at = epochMs();
    samples.push({ child: await child.call({ cmd: 'cpu' }), driver: (driver.user + driver.system) / 1000, at });
  };
  const timers = [windowStart, windowEnd].map((t) => setTimeout(() => void take(), Math.max(0, t - epochMs())));
  return async () => {
    for (let i = 0; i < 100 && samples.length < 2; i++) await sleep(20);
    timers.forEach(clearTimeout);
    const [a, b] = samples.sort((x, y) => x.at - y.at);
    if (a === undefined || b === undefined) return { server: Number.NaN, driver: Number.NaN };
    return { server: (b.child.cpuMs - a.child.cpuMs) / (b.child.at - a.child.at), driver: (b.driver - a.driver) / (b.at - a.at) };
  };
}

/** The child's clock minus this process's, from the IPC round trip with the smallest delay. */
export async function clockOffset(child: Child): Promise<number> {
  let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
  for (let i = 0; i < 20; i++) {
    const t0 = epochMs();
    const theirs = await child.call({ cmd: 'clock' });
    const t1 = epochMs();
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: theirs - (t0 + t1) / 2 };
  }
  return best.offset;
}
