// `npm start` runs its coordinator and datanodes from a bundle it builds when it starts
// (src/launcher/server-bundle.ts), not through tsx, and removes the bundle when it stops.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { bannerUrl } from '../src/launcher/banner.ts';
import { REPO_ROOT, startChild } from '../src/launcher/child-process.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { removeOrphanBundles, SERVER_BUNDLE_ENV } from '../src/launcher/server-bundle.ts';
import { isRunning } from './support/cluster-process.ts';

const BUNDLES = path.join(REPO_ROOT, 'node_modules', '.cache');
// A process's command line is read from /proc: Linux only.
const hasProc = fs.existsSync('/proc/self/cmdline');
// A read-only node_modules/.cache is made with a read-only bind mount in a mount namespace of the
// supervisor's own (root only; chmod does not stop root).
const canMountReadOnly = hasProc && process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0;

/** `npm start`'s supervisor as `npm start` runs it: no bundle handed down (the tests' own is); `wrap` runs before node (exec'ing it, so the pid stays the supervisor's). */
function startSupervisor(args: string[], wrap: string[] = []) {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  delete env[SERVER_BUNDLE_ENV];
  const node = ['--import', 'tsx', 'src/start-cluster.ts', ...args];
  return startChild({
    name: 'npm start',
    command: wrap[0],
    args: wrap.length > 0 ? [...wrap.slice(1), process.execPath, ...node] : node,
    env,
    keep: 1024 * 1024,
    stopSignal: 'SIGINT',
    graceMs: 20_000,
    timeoutMs: 90_000,
    ready: bannerUrl,
  });
}

it.skipIf(!hasProc)('npm start runs its servers from a bundle of its own, removed when it stops, on SIGHUP too (needs /proc)', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bundle-'));
  const port = await freePortBlock(4);
  const supervisor = await startSupervisor(['--port', String(port), '--data-dir', dataDir]);
  const ownBundle = (name: string) => name.startsWith(`tessera-servers-${supervisor.pid}-`);
  let pids: number[] = [];
  let exit;
  try {
    const runDir = path.join(dataDir, 'run');
    pids = fs
      .readdirSync(runDir)
      .filter((f) => f.endsWith('.pid') && f !== 'supervisor.pid')
      .map((f) => Number(fs.readFileSync(path.join(runDir, f), 'utf8')));
    expect(pids).toHaveLength(4); // the coordinator and 3 datanodes
    const [bundle] = fs.readdirSync(BUNDLES).filter(ownBundle);
    expect(bundle).toBeDefined();
    for (const pid of pids) {
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(args.some((a) => a.startsWith(path.join(BUNDLES, bundle) + path.sep))).toBe(true);
      expect(args.join(' ')).not.toMatch(/tsx/);
    }
  } finally {
    // The terminal closing: the supervisor stops its servers and exits as on Ctrl-C.
    exit = await supervisor.stop('SIGHUP');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  // What a failure leaves is removed before it is reported: no process or bundle outlives the test.
  const running = pids.filter(isRunning);
  for (const pid of running) process.kill(pid, 'SIGKILL');
  const bundles = fs.readdirSync(BUNDLES).filter(ownBundle);
  for (const name of bundles) fs.rmSync(path.join(BUNDLES, name), { recursive: true, force: true });
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(running).toEqual([]);
  expect(bundles).toEqual([]);
});

it.skipIf(!canMountReadOnly)(
  'npm start runs its servers through tsx when it cannot write its bundle (read-only node_modules/.cache; needs root)',
  async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bundle-ro-'));
    const port = await freePortBlock(2);
    fs.mkdirSync(BUNDLES, { recursive: true });
    // unshare and sh exec node: the supervisor keeps the pid that stop() signals.
    const readOnly = `mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"`;
    const supervisor = await startSupervisor(
      ['--port', String(port), '--data-dir', dataDir, '--datanodes', '1', '--replication-factor', '1'],
      ['unshare', '-m', 'sh', '-c', readOnly, 'sh', BUNDLES],
    );
    try {
      expect(supervisor.output()).toMatch(/could not build the server bundle.*EROFS/);
      const coordinator = Number(fs.readFileSync(path.join(dataDir, 'run', 'coordinator.pid'), 'utf8'));
      expect(fs.readFileSync(`/proc/${coordinator}/cmdline`, 'utf8').split('\0')).toContain('src/main.ts');
    } finally {
      await supervisor.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
);

it.skipIf(!hasProc)(
  'a start removes the bundles of supervisors that are gone, except one their servers still run on (needs /proc)',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bundles-'));
    const gonePid = spawnSync('true').pid!; // has exited: a supervisor killed with SIGKILL
    const bundle = (pid: number, tag: string) => {
      const at = path.join(dir, `tessera-servers-${pid}-${tag}`);
      fs.mkdirSync(path.join(at, 'src'), { recursive: true });
      fs.writeFileSync(path.join(at, 'src', 'main.js'), '');
      return at;
    };
    const inUse = bundle(gonePid, 'inuse1');
    const unused = bundle(gonePid, 'gone01');
    const makerAlive = bundle(process.pid, 'alive1');
    // A server left running by the killed supervisor: its command line names a file of the bundle.
    const server = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', path.join(inUse, 'src', 'main.js')], { stdio: 'ignore' });
    try {
      await expect.poll(() => fs.readFileSync(`/proc/${server.pid}/cmdline`, 'utf8')).toContain(inUse);
      removeOrphanBundles(dir);
      expect([inUse, unused, makerAlive].map((d) => fs.existsSync(d))).toEqual([true, false, true]);
    } finally {
      server.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
