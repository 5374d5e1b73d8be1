// What the processes cost while something runs: peak resident memory (VmRSS sampled from /proc/<pid>/status,
// and VmHWM after resetting it by writing 5 to /proc/<pid>/clear_refs) and CPU time (/proc/<pid>/stat).
import fs from 'node:fs';

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function resetHwm(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS in bytes of every pid while `work` runs. */
export async function peakRss<T>(
  pids: Record<string, number>,
  work: () => Promise<T>,
  everyMs = 50,
): Promise<{ result: T; peaks: Record<string, number> }> {
  const hwmReset: Record<string, boolean> = {};
  const peaks: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    hwmReset[name] = resetHwm(pid);
    peaks[name] = statusKb(pid, 'VmRSS') ?? 0;
  }
  const sample = () => {
    for (const [name, pid] of Object.entries(pids)) peaks[name] = Math.max(peaks[name], statusKb(pid, 'VmRSS') ?? 0);
  };
  const timer = setInterval(sample, everyMs);
  try {
    const result = await work();
    sample();
    for (const [name, pid] of Object.entries(pids)) if (hwmReset[name]) peaks[name] = Math.max(peaks[name], statusKb(pid, 'VmHWM') ?? 0);
    return { result, peaks: Object.fromEntries(Object.entries(peaks).map(([k, kb]) => [k, kb * 1024])) };
  } finally {
    clearInterval(timer);
  }
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat; NaN when unknown. */
export const cpuMs = (pid: number): number => statCpuMs(`/proc/${pid}/stat`);

/** As cpuMs, the kernel's part only (system time: syscalls, page cache, file system). */
export const systemCpuMs = (pid: number): number => statCpuMs(`/proc/${pid}/stat`, 'system');

/**
 * As cpuMs, of the process's main thread only (its JavaScript; not libuv's pool, libvips'
 * workers or V8's helpers), from /proc/<pid>/task/<pid>/stat.
 */
export const mainThreadCpuMs = (pid: number): number => statCpuMs(`/proc/${pid}/task/${pid}/stat`);

function statCpuMs(file: string, part: 'all' | 'system' = 'all'): number {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[12]) + (part === 'all' ? Number(fields[11]) : 0); // stime (+ utime), in USER_HZ (100)
    return (ticks * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** CPU ms each pid used while `work` ran. */
export async function cpuDuring<T>(
  pids: Record<string, number>,
  work: () => Promise<T>,
): Promise<{ result: T; cpu: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const result = await work();
  return { result, cpu: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid) - before[k]])) };
}
