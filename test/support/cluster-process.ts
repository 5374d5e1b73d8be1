// Runs `src/start-cluster.ts` as `npm start` does (a supervisor process with its coordinator
// and datanode children) for end-to-end tests; stop() is Ctrl-C and checks nothing is left.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bannerUrl } from '../../src/launcher/banner.ts';
import { startChild } from '../../src/launcher/child-process.ts';
import { freePortBlock } from '../../src/launcher/ports.ts';
import { readAdminToken, rememberToken } from './tokens.ts';
import { metadataFor } from './test-metadata.ts';
import { nodeArgsFor } from '../../src/launcher/server-bundle.ts';

export interface ClusterProcess {
  url: string;
  /** The admin token npm start's coordinator wrote into <data-dir>/admin.token. */
  token: string;
  supervisor: ChildProcess;
  output(): string;
  /** Pids from <data-dir>/run, written by the supervisor. */
  childPids(): Record<string, number>;
  /** SIGINT (Ctrl-C), then waits for the supervisor to exit. */
  stop(): Promise<number | null>;
}

export const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export async function startClusterProcess(dataDir: string, port: number, args: string[] = [], timeoutMs = 60_000): Promise<ClusterProcess> {
  // TESSERA_TEST_METADATA=postgres: the index of this data dir in a PostgreSQL database of its own.
  const metadata = args.includes('--metadata') ? undefined : await metadataFor(dataDir);
  if (metadata) args = [...args, '--metadata', metadata];
  const supervisor = await startChild({
    name: 'npm start',
    args: [...nodeArgsFor('src/start-cluster.ts'), '--port', String(port), '--data-dir', dataDir, ...args],
    env: { ...process.env, LOG_LEVEL: 'warn' },
    keep: 1024 * 1024,
    stopSignal: 'SIGINT',
    graceMs: 20_000,
    timeoutMs,
    ready: bannerUrl,
  });
  const url = supervisor.ready;
  const runDir = path.join(dataDir, 'run');
  const token = readAdminToken(dataDir);
  rememberToken(url, token);
  return {
    url,
    token,
    supervisor: supervisor.process,
    output: supervisor.output,
    childPids: () =>
      Object.fromEntries(
        (fs.existsSync(runDir) ? fs.readdirSync(runDir) : [])
          .filter((f) => f.endsWith('.pid') && f !== 'supervisor.pid')
          .map((f) => [f.slice(0, -4), Number(fs.readFileSync(path.join(runDir, f), 'utf8'))]),
      ),
    stop: async () => (await supervisor.stop()).code,
  };
}

export { freePortBlock };
