// The datanode's machine health (CPU, memory, the data dir's filesystem), sampled in the
// background so that GET /health answers at once. Memory comes from systeminformation (an async
// read of /proc/meminfo); CPU and disk are read here instead, because its currentLoad() and
// fsSize() run `cat /proc/stat | grep cpu` and `df` through execSync, which blocked the event
// loop (and every fragment PUT) for the length of a child process at every sample.
import { readFile, realpath, statfs } from 'node:fs/promises';
import os from 'node:os';
import type { Logger } from 'pino';
import si from 'systeminformation';
import { createScheduler } from '../src/shared/scheduler.ts';

export interface SystemSample {
  cpuPercent: number;
  memoryPercent: number;
  diskPercent: number;
  diskFreeBytes: number;
}

export interface HealthSampler {
  /** The latest sample; only before the first one completes does this wait (once). */
  current(): Promise<SystemSample>;
  stop(): void;
}

/** One measurement of the machine and of the filesystem that holds `dataRealPath`. */
export async function sampleSystem(dataRealPath: string): Promise<SystemSample> {
  const [cpuPercent, memoryPercent, disk] = await Promise.all([cpuLoad(), memoryUse(), diskUsage(dataRealPath)]);
  return { cpuPercent: clampPercent(cpuPercent), memoryPercent: clampPercent(memoryPercent), ...disk };
}

interface CpuTimes {
  busy: number;
  total: number;
}

/** Whole-machine CPU time so far: /proc/stat's first line (steal and iowait included), else os.cpus(). */
async function cpuTimes(): Promise<CpuTimes> {
  try {
    const line = (await readFile('/proc/stat', 'latin1')).split('\n', 1)[0];
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
    if ([user, nice, system, idle].every(Number.isFinite)) {
      const busy = user + nice + system + irq + softirq + steal;
      return { busy, total: busy + idle + iowait };
    }
  } catch {
    // not Linux: fall through
  }
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    const b = times.user + times.nice + times.sys + times.irq;
    busy += b;
    total += b + times.idle;
  }
  return { busy, total };
}

let previousCpu: CpuTimes | undefined;

/** CPU load in % since the previous sample (the first one: since boot), as systeminformation's currentLoad. */
async function cpuLoad(): Promise<number> {
  const now = await cpuTimes();
  const before = previousCpu ?? { busy: 0, total: 0 };
  previousCpu = now;
  const total = now.total - before.total;
  return total > 0 ? ((now.busy - before.busy) / total) * 100 : 0;
}

/** (total - available) / total: page cache the kernel can reclaim is not "used". */
async function memoryUse(): Promise<number> {
  const { total, available } = await si.mem();
  return total > 0 ? ((total - available) / total) * 100 : 0;
}

/** As df computes Use% for the filesystem holding the path: reserved blocks are neither used nor available to us. */
async function diskUsage(dataRealPath: string): Promise<Pick<SystemSample, 'diskPercent' | 'diskFreeBytes'>> {
  const s = await statfs(dataRealPath);
  const used = (s.blocks - s.bfree) * s.bsize;
  const available = s.bavail * s.bsize;
  return { diskPercent: clampPercent((used / (used + available)) * 100 || 0), diskFreeBytes: available };
}

function clampPercent(value: number): number {
  return Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0;
}

/**
 * Samples now and then every `intervalMs` (the next sample starts only after the previous ended,
 * so a slow systeminformation call never piles up). The wait is unref'd: it keeps no process alive.
 */
export function startHealthSampler({
  dataDir,
  intervalMs = 1000,
  logger,
  sample = sampleSystem,
}: {
  dataDir: string;
  intervalMs?: number;
  logger?: Logger;
  sample?: (dataRealPath: string) => Promise<SystemSample>;
}): HealthSampler {
  let latest: SystemSample | undefined;
  /** Why there is no sample yet, for current() to say. */
  let failure: unknown;
  let dataRealPath: string | undefined;

  const takeSample = async (): Promise<void> => {
    try {
      dataRealPath ??= await realpath(dataDir);
      latest = await sample(dataRealPath);
    } catch (err) {
      // Keep answering the previous sample: a stale number beats a failed health check.
      logger?.warn({ err }, 'health sample failed');
      failure = err;
    }
  };

  const loop = createScheduler({ log: logger }).loop('health sampling', takeSample, {
    everyMs: intervalMs,
    unref: true,
    abandonOnStop: true,
  });
  loop.start();
  const first = loop.idle();

  return {
    async current() {
      if (latest !== undefined) return latest;
      await first;
      if (latest === undefined) throw failure ?? new Error('no health sample yet');
      return latest;
    },
    stop() {
      void loop.stop(); // a hung sample is abandoned, not waited for
    },
  };
}
