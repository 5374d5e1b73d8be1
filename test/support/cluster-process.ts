// Runs `src/start-cluster.ts` as `npm start` does (a supervisor process with its coordinator
// and datanode children) for end-to-end tests; stop() is Ctrl-C and checks nothing is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePortBlock } from '../../src/launcher/ports.ts';
import { waitForBannerUrl } from '../../src/launcher/banner.ts';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './datanode-process.ts';
import { readAdminToken, rememberToken } from './tokens.ts';

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

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};


export async function startClusterProcess(dataDir: string, port: number, args: string[] = [], timeoutMs = 60_000): Promise<ClusterProcess> {
  const supervisor = spawn(process.execPath, ['--import', 'tsx', 'src/start-cluster.ts', '--port', String(port), '--data-dir', dataDir, ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  alive.add(supervisor);
  let output = '';
  supervisor.stdout!.on('data', (d) => (output += d));
  supervisor.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => supervisor.once('exit', (code) => {
    alive.delete(supervisor);
    resolve(code);
  }));

  const url = await waitForBannerUrl(supervisor.stdout!, () => output, exited, timeoutMs);

  const runDir = path.join(dataDir, 'run');
  const token = readAdminToken(dataDir);
  rememberToken(url, token);
  return {
    url,
    token,
    supervisor,
    output: () => output,
    childPids: () =>
      Object.fromEntries(
        (fs.existsSync(runDir) ? fs.readdirSync(runDir) : [])
          .filter((f) => f.endsWith('.pid') && f !== 'supervisor.pid')
          .map((f) => [f.slice(0, -4), Number(fs.readFileSync(path.join(runDir, f), 'utf8'))]),
      ),
    async stop() {
      if (supervisor.exitCode !== null) return supervisor.exitCode;
      supervisor.kill('SIGINT');
      const forced = setTimeout(() => supervisor.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(forced);
      return code;
    },
  };
}

export { freePortBlock };
