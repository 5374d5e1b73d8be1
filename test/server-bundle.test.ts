// `npm start` runs its coordinator and datanodes from a bundle it builds when it starts
// (src/launcher/server-bundle.ts), not through tsx, and removes the bundle when it stops.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { bannerUrl } from '../src/launcher/banner.ts';
import { REPO_ROOT, startChild } from '../src/launcher/child-process.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { SERVER_BUNDLE_ENV } from '../src/launcher/server-bundle.ts';

const BUNDLES = path.join(REPO_ROOT, 'node_modules', '.cache');
// A process's command line is read from /proc: Linux only.
const hasProc = fs.existsSync('/proc/self/cmdline');

it.skipIf(!hasProc)('npm start runs its servers from a bundle of its own, removed when it stops (needs /proc)', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bundle-'));
  const port = await freePortBlock(4);
  // As `npm start` runs it: no bundle handed down (the tests' own is).
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  delete env[SERVER_BUNDLE_ENV];
  const supervisor = await startChild({
    name: 'npm start',
    args: ['--import', 'tsx', 'src/start-cluster.ts', '--port', String(port), '--data-dir', dataDir],
    env,
    keep: 1024 * 1024,
    stopSignal: 'SIGINT',
    graceMs: 20_000,
    timeoutMs: 90_000,
    ready: bannerUrl,
  });
  const ownBundle = (name: string) => name.startsWith(`tessera-servers-${supervisor.pid}-`);
  try {
    const runDir = path.join(dataDir, 'run');
    const pids = fs
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
    await supervisor.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  expect(fs.readdirSync(BUNDLES).filter(ownBundle)).toEqual([]);
});
