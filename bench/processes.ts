// The processes the bench measures: `npm start` (supervisor, coordinator, 3 datanodes) and the
// bare proxy, on loopback, under one temp dir. Every process started here is tracked and ended on
// exit, failure or Ctrl-C; the temp dir is removed.
import fs from 'node:fs';
import path from 'node:path';
import { bannerUrl } from '../src/launcher/banner.ts';
import { ChildGroup, listeningLine, REPO_ROOT, startChild, type Child } from '../src/launcher/child-process.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { isAlive } from '../src/launcher/pid-files.ts';
import { COORDINATOR_ENV, COORDINATOR_NODE_ARGS } from '../src/launcher/service-process.ts';
import { buildServerBundle, nodeArgsFor, prepareServerBundle } from '../src/launcher/server-bundle.ts';

export { REPO_ROOT };

const started = new ChildGroup();
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
    for (const child of started.running) child.kill('SIGKILL');
  })());
}

/** Children the bench itself is stopping: their end is not news. */
const stopping = new WeakSet<Child>();

/**
 * A process of the cluster that ends while the bench runs fails the run with a bare "socket hang
 * up": say which one ended, with its last output (kept even when --verbose is off).
 */
function reportEarlyExit(child: Child) {
  void child.exited.then(({ code, signal }) => {
    if (cleaning || stopping.has(child)) return;
    process.stderr.write(`bench: ${child.name} ended (${signal ?? `exit ${code}`}) during the run; its last output:\n`);
    process.stderr.write(child.output().slice(-4000).replace(/^/gm, '  | ') + '\n');
  });
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

/** Flags and environment for the processes of Tessera; `log` gets their output lines. */
interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  log?: (line: string) => void;
}

/** `npm start --port P --data-dir D` as a child process; resolves once it prints that it is up. */
export async function startCluster(
  dataDir: string,
  port: number,
  { args = [], env = {}, log = () => {} }: StartOptions = {},
): Promise<Cluster> {
  // One bundle for every server the bench starts (removed when the bench exits).
  await prepareServerBundle();
  const supervisor = await startChild({
    name: 'npm start',
    args: [...nodeArgsFor('src/start-cluster.ts'), '--port', String(port), '--data-dir', dataDir, ...args],
    env: { ...process.env, ...env },
    group: started,
    keep: 1024 * 1024,
    stopSignal: 'SIGINT',
    graceMs: 20_000,
    onLine: (line) => line.trim() && log(line),
    timeoutMs: 90_000,
    ready: bannerUrl,
  });
  const runDir = path.join(dataDir, 'run');
  const pids = () =>
    Object.fromEntries(
      (fs.existsSync(runDir) ? fs.readdirSync(runDir) : [])
        .filter((f) => f.endsWith('.pid'))
        .map((f) => [f.slice(0, -4), Number(fs.readFileSync(path.join(runDir, f), 'utf8'))]),
    ) as Record<string, number>;
  const stop = async () => {
    const children = Object.entries(pids())
      .filter(([name]) => name !== 'supervisor')
      .map(([, pid]) => pid);
    stopping.add(supervisor);
    await supervisor.stop();
    // The supervisor stops its children; if it could not, nothing of ours is left running.
    for (const pid of children) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  };
  onCleanup(stop);
  reportEarlyExit(supervisor);

  const url = supervisor.ready;
  const datanodeUrls = [...supervisor.output().matchAll(/datanode-\d+\s+(http:\/\/\S+)/g)].map((m) => m[1]);
  const token = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  return { url, dataDir, datanodeUrls, secretFile: path.join(dataDir, 'cluster.secret'), token, pids, stop };
}

/**
 * One more coordinator (`src/main.ts`, run as npm start runs its own) on the cluster's datanodes,
 * secret and `args`, with its own data dir under the cluster's: given the cluster's `--metadata
 * postgres://…`, a second coordinator of the same database.
 */
export async function startCoordinator(
  cluster: Cluster,
  name: string,
  { args = [], env = {}, log = () => {} }: StartOptions = {},
): Promise<{ url: string; pid: number }> {
  const child = await startChild({
    name,
    args: [
      ...COORDINATOR_NODE_ARGS,
      ...[...nodeArgsFor('src/main.ts'), '--port', '0', '--data-dir', path.join(cluster.dataDir, name)],
      ...['--secret-file', cluster.secretFile, ...cluster.datanodeUrls.flatMap((u) => ['--datanode', u]), ...args],
    ],
    env: { ...process.env, ...COORDINATOR_ENV, ...env },
    group: started,
    onLine: (line) => line.trim() && log(line),
    timeoutMs: 60_000,
    ready: listeningLine,
  });
  onCleanup(async () => void (await child.stop()));
  reportEarlyExit(child);
  return { url: child.ready.url, pid: child.pid };
}

export interface BareProxy {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startBareProxy(
  port: number,
  datanodeUrls: string[],
  secretFile: string,
  env: Record<string, string> = {},
): Promise<BareProxy> {
  // Bundled as the servers it is compared with are: neither side pays tsx's loader (CPU, RSS).
  const outdir = path.join((await prepareServerBundle()).dir, 'bench');
  await buildServerBundle(outdir, ['bench/bare-proxy.ts']);
  const child = await startChild({
    name: 'the bare proxy',
    args: [
      path.join(outdir, 'bench/bare-proxy.js'),
      '--port',
      String(port),
      '--secret-file',
      secretFile,
      ...datanodeUrls.flatMap((u) => ['--datanode', u]),
    ],
    env: { ...process.env, ...env },
    group: started,
    stderr: 'inherit',
    // The proxy ends itself when the bench goes away (its IPC channel closes), even on SIGKILL.
    ipc: true,
    timeoutMs: 30_000,
    ready: listeningLine,
  });
  const stop = async () => void (await child.stop());
  onCleanup(stop);
  return { url: child.ready.url, pid: child.pid, stop };
}

/** Removes the bench's temp dir at the end. */
export function removeOnCleanup(dir: string) {
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
}

export { freePortBlock };
