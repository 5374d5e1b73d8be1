// The processes the bench measures: `npm start` (supervisor, coordinator, 3 datanodes) and the
// bare proxy, on loopback, under one temp dir. Every process started here is tracked and ended on
// exit, failure or Ctrl-C; the temp dir is removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePortBlock } from '../src/launcher/ports.ts';
import { waitForBannerUrl } from '../src/launcher/banner.ts';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

const started = new Set<ChildProcess>();
const cleanups: (() => Promise<void> | void)[] = [];

/** Runs `fn` on shutdown (normal end, error, SIGINT/SIGTERM), last registered first. */
export const onCleanup = (fn: () => Promise<void> | void) => cleanups.push(fn);

let cleaning: Promise<void> | undefined;
export function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup: ${(err as Error).message}\n`);
      }
    }
    for (const child of started) child.kill('SIGKILL');
  })());
}

// Last resort on a synchronous exit: nothing we started outlives us.
process.once('exit', () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};


function track(child: ChildProcess): Promise<number | null> {
  started.add(child);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>, signal: NodeJS.Signals, graceMs: number) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const forced = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(forced);
}

export interface Cluster {
  url: string;
  dataDir: string;
  datanodeUrls: string[];
  secretFile: string;
  /** The admin token npm start's coordinator wrote (<data-dir>/admin.token). */
  token: string;
  /** The coordinator's and datanodes' pids, from <data-dir>/run. */
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

/** `npm start --port P --data-dir D` as a child process; resolves once it prints that it is up. */
export async function startCluster(dataDir: string, port: number, { args = [], env = {}, log = (_: string) => {} }: { args?: string[]; env?: Record<string, string>; log?: (line: string) => void } = {}): Promise<Cluster> {
  const supervisor = spawn(process.execPath, ['--import', 'tsx', 'src/start-cluster.ts', '--port', String(port), '--data-dir', dataDir, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = track(supervisor);
  let output = '';
  const collect = (d: Buffer) => {
    output += d;
    for (const line of String(d).split('\n')) if (line.trim()) log(line);
  };
  supervisor.stdout!.on('data', collect);
  supervisor.stderr!.on('data', collect);
  const runDir = path.join(dataDir, 'run');
  const pids = () =>
    Object.fromEntries(
      (fs.existsSync(runDir) ? fs.readdirSync(runDir) : [])
        .filter((f) => f.endsWith('.pid'))
        .map((f) => [f.slice(0, -4), Number(fs.readFileSync(path.join(runDir, f), 'utf8'))]),
    ) as Record<string, number>;
  const stop = async () => {
    const children = Object.entries(pids()).filter(([name]) => name !== 'supervisor').map(([, pid]) => pid);
    await stopChild(supervisor, exited, 'SIGINT', 20_000);
    // The supervisor stops its children; if it could not, nothing of ours is left running.
    for (const pid of children) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  };
  onCleanup(stop);

  const url = await waitForBannerUrl(supervisor.stdout!, () => output, exited, 90_000);
  const datanodeUrls = [...output.matchAll(/datanode-\d+\s+(http:\/\/\S+)/g)].map((m) => m[1]);
  const token = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  return { url, dataDir, datanodeUrls, secretFile: path.join(dataDir, 'cluster.secret'), token, pids, stop };
}

export interface BareProxy {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startBareProxy(port: number, datanodeUrls: string[], secretFile: string, env: Record<string, string> = {}): Promise<BareProxy> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/bare-proxy.ts', '--port', String(port), '--secret-file', secretFile, ...datanodeUrls.flatMap((u) => ['--datanode', u])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    // ipc: the proxy ends itself when the bench goes away, even on SIGKILL.
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const exited = track(child);
  const stop = () => stopChild(child, exited, 'SIGTERM', 5_000);
  onCleanup(stop);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`the bare proxy exited with ${code} before it was up`)));
  });
  return { url, pid: child.pid!, stop };
}

/** Removes the bench's temp dir at the end. */
export function removeOnCleanup(dir: string) {
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
}

export { freePortBlock };
