// Starts `src/main.ts` (the coordinator alone) as a real child process for tests about processes
// (kill -9, restart on the same data dir); it never leaves a process behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { repoRoot } from './datanode-process.ts';
import { readAdminToken, rememberToken } from './tokens.ts';

export interface CoordinatorProcessOptions {
  /** The coordinator's --data-dir (the SQLite index). */
  dataDir: string;
  /** Handed over as TESSERA_CLUSTER_SECRET; without it the coordinator runs --insecure. */
  secret?: string;
  /** More flags, e.g. ['--health-interval-ms', '500']. */
  args?: string[];
  /** Default 0: an ephemeral port, read back from the listening line. */
  port?: number;
  env?: Record<string, string | undefined>;
  /** How long to wait for the listening line. */
  timeoutMs?: number;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface CoordinatorProcess {
  url: string;
  /** The admin token it wrote into <data-dir>/admin.token (sent by the helpers by default). */
  token: string;
  port: number;
  pid: number;
  process: ChildProcess;
  /** The last 64 KiB the process wrote to stderr (its pino log). */
  stderr(): string;
  /** Resolves once the process has exited (immediately if it already has). */
  exited: Promise<Exit>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, wait for exit, SIGKILL after 5 s. Safe to call twice or after a kill. */
  stop(): Promise<Exit>;
}

const KEEP = 64 * 1024;
const running = new Set<ChildProcess>();

// Last resort: a test runner that exits with children still running takes them along.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function stopChild(child: ChildProcess, exited: Promise<Exit>): Promise<Exit> {
  if (hasExited(child)) return exited;
  child.kill('SIGTERM');
  const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
  try {
    return await exited;
  } finally {
    clearTimeout(forced);
  }
}

/** Starts a coordinator and resolves once it prints `{"event":"listening",...}` on stdout. */
export async function startCoordinatorProcess(opts: CoordinatorProcessOptions): Promise<CoordinatorProcess> {
  const args = ['--import', 'tsx', 'src/main.ts', '--port', String(opts.port ?? 0), '--data-dir', opts.dataDir];
  if (opts.secret === undefined) args.push('--insecure');
  args.push(...(opts.args ?? []));

  const env: NodeJS.ProcessEnv = { ...process.env };
  // Inherited TESSERA_* settings (secret, port, public URL...) would change what the test runs.
  for (const key of Object.keys(env)) if (key.startsWith('TESSERA_')) delete env[key];
  if (opts.secret !== undefined) env.TESSERA_CLUSTER_SECRET = opts.secret;
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }

  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err = (err + s).slice(-KEEP);
  });
  const stderr = () => err;
  const exited = new Promise<Exit>((resolveExit) => {
    const done = (exit: Exit) => {
      running.delete(child);
      resolveExit(exit);
    };
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', () => done({ code: null, signal: null }));
  });

  const timeoutMs = opts.timeoutMs ?? 20_000;
  let listening: { port: number; url: string };
  try {
    listening = await new Promise((resolveListen, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => finish(new Error(`coordinator did not print its listening line within ${timeoutMs} ms; stderr:\n${stderr()}`)), timeoutMs);
      let finished = false;
      function finish(error: Error | undefined, value?: { port: number; url: string }) {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        lines.close();
        child.stdout!.resume(); // keep draining: a full pipe would block the child
        if (error) reject(error);
        else resolveListen(value!);
      }
      lines.on('line', (line) => {
        let event: { event?: unknown; port?: unknown; url?: unknown };
        try {
          event = JSON.parse(line);
        } catch {
          return; // not the listening line
        }
        if (event?.event === 'listening' && typeof event.port === 'number' && typeof event.url === 'string') {
          finish(undefined, { port: event.port, url: event.url });
        }
      });
      void exited.then(({ code, signal }) => finish(new Error(`coordinator exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr()}`)));
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }

  const token = readAdminToken(opts.dataDir);
  rememberToken(listening.url, token);
  let stopping: Promise<Exit> | undefined;
  return {
    ...listening,
    token,
    pid: child.pid!,
    process: child,
    stderr,
    exited,
    kill(signal = 'SIGTERM') {
      if (!hasExited(child)) child.kill(signal);
    },
    stop: () => (stopping ??= stopChild(child, exited)),
  };
}

/** Stops every coordinator process this module started that still runs (for afterAll). */
export async function stopAllCoordinatorProcesses(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const exited = new Promise<Exit>((r) => {
        if (hasExited(child)) r({ code: child.exitCode, signal: child.signalCode });
        else child.once('exit', (code, signal) => r({ code, signal }));
      });
      return stopChild(child, exited);
    }),
  );
}
