/**
 * CPU time of the services the replicas share on this machine (the NATS server and
 * PostgreSQL), read from /proc: routing costs NATS work and every replica writes to the one
 * database, so the coordinators' own CPU is not the whole price of a job. Processes that end
 * between two readings (a PostgreSQL backend closed) are left out, so a difference is a floor,
 * and the services also serve whatever else runs on the machine.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ServiceCpu {
  /** CPU ms used by the `nats-server` processes between two readings. */
  nats: number;
  /** CPU ms used by the `postgres` processes between two readings. */
  postgres: number;
}

/** CPU ms so far of each service process, by pid. */
export type ServiceReading = Map<string, { service: keyof ServiceCpu; cpuMs: number }>;

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    const answer = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    ticksPerSecond = Number.isFinite(answer) && answer > 0 ? answer : 100;
  }
  return ticksPerSecond;
}

/** The services' processes and their CPU so far, or null where /proc cannot be read (not Linux). */
export function readServices(): ServiceReading | null {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  const ms = 1000 / clockTicks();
  const reading: ServiceReading = new Map();
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // `pid (comm) state ppid …`: utime and stime are fields 14 and 15, the 12th and 13th after `)`.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const service = comm === 'nats-server' ? 'nats' : comm === 'postgres' ? 'postgres' : null;
    if (service === null) continue;
    const fields = stat.slice(close + 2).split(' ');
    reading.set(pid, { service, cpuMs: (Number(fields[11]) + Number(fields[12])) * ms });
  }
  return reading;
}

/** CPU each service used from `a` to `b`, over the processes alive at both readings. */
export function serviceCpu(a: ServiceReading, b: ServiceReading): ServiceCpu {
  const used: ServiceCpu = { nats: 0, postgres: 0 };
  for (const [pid, later] of b) {
    const earlier = a.get(pid);
    if (earlier !== undefined && earlier.service === later.service) used[later.service] += Math.max(0, later.cpuMs - earlier.cpuMs);
  }
  return used;
}
