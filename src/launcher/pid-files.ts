// Pid files under <data-dir>/run: a second `npm start` on the same data dir finds what an
// earlier one left running, refuses to double a live cluster, and ends orphaned processes.
import fs from 'node:fs';
import path from 'node:path';

export const RUN_DIR = 'run';
export const SUPERVISOR = 'supervisor';

/** Whether a process runs with this pid (EPERM: it does, as another user). */
export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The command line of a pid (Linux /proc), to tell our process from a recycled pid. */
const commandLine = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};

export function pidFiles(dataDir: string) {
  const dir = path.join(dataDir, RUN_DIR);
  const file = (name: string) => path.join(dir, `${name}.pid`);

  const read = (): { name: string; pid: number }[] => {
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => ({ name: f.slice(0, -4), pid: Number(fs.readFileSync(path.join(dir, f), 'utf8').trim()) }))
      .filter((p) => Number.isSafeInteger(p.pid) && p.pid > 0);
  };

  /** Live processes recorded by an earlier run that still look like ours. */
  const leftovers = () =>
    read().filter((p) => p.pid !== process.pid && isAlive(p.pid) && /tsx|tessera|main\.ts|start-cluster/.test(commandLine(p.pid)));

  return {
    leftovers,
    /** The pid of a live `npm start` already running on this data dir, if any. */
    liveSupervisor: () => leftovers().find((p) => p.name === SUPERVISOR)?.pid,
    write(name: string, pid: number) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(file(name), `${pid}\n`);
    },
    clear() {
      for (const p of read()) fs.rmSync(file(p.name), { force: true });
    },
    /** SIGTERM the leftovers, SIGKILL what is still alive after `graceMs`. */
    async endLeftovers(graceMs = 5000): Promise<{ name: string; pid: number }[]> {
      const found = leftovers().filter((p) => p.name !== SUPERVISOR);
      for (const p of found) process.kill(p.pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (found.some((p) => isAlive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      for (const p of found) if (isAlive(p.pid)) process.kill(p.pid, 'SIGKILL');
      return found;
    },
  };
}
