// The datanode's machine health (CPU, memory, the data dir's filesystem), sampled in the
// background so that GET /health answers at once instead of waiting on systeminformation.
import { realpath, statfs } from 'node:fs/promises';
import { sep } from 'node:path';
import si from 'systeminformation';
import type { Logger } from 'pino';

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

interface MountEntry {
  mount: string;
}

/**
 * The filesystem holding `path`: the entry with the longest mount point that contains it.
 * A mount contains a path only at a segment boundary: `/data` holds `/data/x`, not `/database`.
 */
export function chooseFilesystem<T extends MountEntry>(entries: readonly T[], path: string): T | undefined {
  let best: T | undefined;
  for (const entry of entries) {
    if (!mountContains(entry.mount, path)) continue;
    if (best === undefined || entry.mount.length > best.mount.length) best = entry;
  }
  return best;
}

function mountContains(mount: string, path: string): boolean {
  if (mount === '') return false;
  if (mount === path) return true;
  const prefix = mount.endsWith(sep) ? mount : mount + sep;
  return path.startsWith(prefix);
}

/** One measurement of the machine and of the filesystem that holds `dataRealPath`. */
export async function sampleSystem(dataRealPath: string): Promise<SystemSample> {
  const [load, memory, filesystems] = await Promise.all([si.currentLoad(), si.mem(), si.fsSize()]);
  const disk = await diskUsage(filesystems, dataRealPath);
  return {
    cpuPercent: clampPercent(load.currentLoad),
    // Page cache is not "used": available memory counts what the kernel can reclaim.
    memoryPercent: clampPercent(((memory.total - memory.available) / memory.total) * 100),
    ...disk,
  };
}

async function diskUsage(
  filesystems: readonly { mount: string; used: number; available: number; use: number }[],
  dataRealPath: string,
): Promise<Pick<SystemSample, 'diskPercent' | 'diskFreeBytes'>> {
  const fs = chooseFilesystem(filesystems, dataRealPath);
  if (fs !== undefined && fs.used + fs.available > 0) {
    // As df computes Use%: reserved blocks are neither used nor available to us.
    return { diskPercent: clampPercent((fs.used / (fs.used + fs.available)) * 100), diskFreeBytes: fs.available };
  }
  // systeminformation lists no mount for this path (some containers): ask the kernel directly.
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
 * so a slow systeminformation call never piles up). The timer is unref'd: it keeps no process alive.
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
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const takeSample = async (dataRealPath: string): Promise<void> => {
    try {
      latest = await sample(dataRealPath);
    } catch (err) {
      // Keep answering the previous sample: a stale number beats a failed health check.
      logger?.warn({ err }, 'health sample failed');
      if (latest === undefined) throw err;
    }
  };

  const schedule = (dataRealPath: string): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void takeSample(dataRealPath)
        .catch(() => undefined)
        .finally(() => schedule(dataRealPath));
    }, intervalMs);
    timer.unref();
  };

  const first = realpath(dataDir).then(async (dataRealPath) => {
    try {
      await takeSample(dataRealPath);
    } finally {
      schedule(dataRealPath);
    }
  });
  first.catch(() => undefined); // observed by current(); never an unhandled rejection

  return {
    async current() {
      if (latest !== undefined) return latest;
      await first;
      if (latest === undefined) throw new Error('no health sample yet');
      return latest;
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
