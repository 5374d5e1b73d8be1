// Starts `datanode/main.ts` as a real child process for tests about processes (crash, restart,
// flags, registration); shared with the coordinator's tests, so it never leaves a process behind.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface DatanodeProcessOptions {
  dataDir: string;
  /** Handed over as TESSERA_CLUSTER_SECRET. Without it (and without secretFile) the env var is unset. */
  secret?: string;
  secretFile?: string;
  coordinator?: string;
  /** Default 0: an ephemeral port, read back from the listening line. */
  port?: number;
  extraArgs?: string[];
  env?: Record<string, string | undefined>;
  /** How long to wait for the listening line. */
  timeoutMs?: number;
}

export interface DatanodeProcess {
  url: string;
  port: number;
  pid: number;
  process: ChildProcess;
  /** Everything the process wrote to stderr so far (its pino log). */
  stderr(): string;
  /** Resolves once the process has exited (immediately if it already has). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, wait for exit, SIGKILL after 5 s. Safe to call twice or after a kill. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface DatanodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const STDERR_KEEP = 64 * 1024;
const running = new Set<ChildProcess>();

// Last resort: a test runner that exits with children still running takes them along.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function datanodeArgs(opts: DatanodeProcessOptions): string[] {
  const args = ['--import', 'tsx', 'datanode/main.ts', '--port', String(opts.port ?? 0), '--data-dir', opts.dataDir];
  if (opts.secretFile !== undefined) args.push('--secret-file', opts.secretFile);
  if (opts.coordinator !== undefined) args.push('--coordinator', opts.coordinator);
  return [...args, ...(opts.extraArgs ?? [])];
}

function datanodeEnv(opts: DatanodeProcessOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // An inherited secret would hide a test's "no secret" case.
  delete env.TESSERA_CLUSTER_SECRET;
  if (opts.secret !== undefined) env.TESSERA_CLUSTER_SECRET = opts.secret;
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function spawnDatanode(opts: DatanodeProcessOptions): {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  const child = spawn(process.execPath, datanodeArgs(opts), {
    cwd: repoRoot,
    env: datanodeEnv(opts),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out = (out + s).slice(-STDERR_KEEP);
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err = (err + s).slice(-STDERR_KEEP);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolveExit({ code, signal });
    });
    child.once('error', () => {
      running.delete(child);
      resolveExit({ code: null, signal: null });
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Starts a datanode and resolves once it prints its listening line. */
export async function startDatanodeProcess(opts: DatanodeProcessOptions): Promise<DatanodeProcess> {
  const { child, stderr, exited } = spawnDatanode(opts);
  const timeoutMs = opts.timeoutMs ?? 15_000;

  const listening = await new Promise<{ port: number; url: string }>((resolveListen, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`datanode did not print its listening line within ${timeoutMs} ms; stderr:\n${stderr()}`));
    }, timeoutMs);
    const finish = (err: Error | undefined, value?: { port: number; url: string }) => {
      clearTimeout(timer);
      lines.close();
      child.stdout!.resume(); // keep draining: a full pipe would block the child
      if (err) reject(err);
      else resolveListen(value!);
    };
    lines.on('line', (line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return; // not ours to interpret
      }
      const event = parsed as { event?: string; port?: number; url?: string };
      if (event.event === 'listening' && typeof event.port === 'number' && typeof event.url === 'string') {
        finish(undefined, { port: event.port, url: event.url });
      }
    });
    void exited.then(({ code, signal }) =>
      finish(new Error(`datanode exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr()}`)),
    );
  });

  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    ...listening,
    pid: child.pid!,
    process: child,
    stderr,
    exited,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill('SIGTERM');
        const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
        try {
          return await exited;
        } finally {
          clearTimeout(forced);
        }
      })();
      return stopping;
    },
  };
}

/** Runs a datanode expected to stop on its own (bad flags, no secret): its exit and output. */
export async function runDatanodeUntilExit(opts: DatanodeProcessOptions, timeoutMs = 15_000): Promise<DatanodeExit> {
  const { child, stdout, stderr, exited } = spawnDatanode(opts);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await exited;
  clearTimeout(timer);
  return { code, signal, stdout: stdout(), stderr: stderr() };
}

/** Stops every datanode process this module started and that still runs (for afterAll). */
export async function stopAllDatanodeProcesses(): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(forced);
    }),
  );
}
