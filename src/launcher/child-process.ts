// The one way Tessera starts a child process and waits for it: `npm start`'s coordinator and
// datanodes, and the processes of the tests and the bench. It decides how a child is spawned,
// when it counts as ready (a line it prints on stdout), what of its output is kept for an error
// message, and that no child outlives us: killed when it fails to start, on stop() (SIGKILL after
// a grace period) and, as a last resort, when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** Children started together, stopped together (a test file's afterAll, the bench's cleanup). */
export class ChildGroup {
  readonly running = new Set<Child>();
  /** Stops every child of the group that still runs. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((child) => child.stop()));
  }
}

export interface ChildOptions {
  /** Names the child in error messages. */
  name: string;
  /** The arguments: to node, or to `command`. */
  args: string[];
  /** Default: this node binary. */
  command?: string;
  /** Default: the repository root (tsx entries are given relative to it). */
  cwd?: string;
  /** The child's whole environment. Default: ours. */
  env?: NodeJS.ProcessEnv;
  /** 'inherit' passes the child's stderr straight through instead of reading it. */
  stderr?: 'pipe' | 'inherit';
  /** Opens an IPC channel: a child that watches it ends itself when we go away, even on SIGKILL. */
  ipc?: boolean;
  /** Called with every line the child prints, as it comes. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How many characters of each output are kept (default 64 Ki). */
  keep?: number;
  /** How stop() ends it by default, also after a failed start: SIGTERM, SIGKILL 5 s later. */
  stopSignal?: NodeJS.Signals;
  graceMs?: number;
  group?: ChildGroup;
}

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Resolves once the process has exited (immediately if it already has). */
  exited: Promise<Exit>;
  /** Resolves once it has exited and its output is read to the end (or 1 s after exit). */
  closed: Promise<void>;
  /** The last `keep` characters it printed on each stream, and on both as they came. */
  stdout(): string;
  stderr(): string;
  output(): string;
  hasExited(): boolean;
  /** Sends `signal` unless the process has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** `signal`, SIGKILL after `graceMs` (defaults from the options); resolves on exit. Safe to call twice. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

/**
 * The last `keep` characters of a stream of text. Pieces are joined and cut only once they hold
 * twice `keep`: a chatty child (a log line per request) costs its reader a copy of the kept text
 * every `keep` characters, not one per line (1 MB per line once the bench's megabyte was full).
 */
export function outputTail(keep: number) {
  let pieces: string[] = [];
  let length = 0;
  const cut = () => {
    const text = pieces.join('');
    const kept = text.length <= keep ? text : keep > 0 ? text.slice(-keep) : '';
    pieces = [kept];
    length = kept.length;
    return kept;
  };
  return {
    add(text: string): void {
      pieces.push(text);
      length += text.length;
      if (length > 2 * keep) cut();
    },
    text: cut,
  };
}

/** Spawns a child whose output is read line by line (so its pipes never fill) and kept. */
export function spawnChild(opts: ChildOptions): Child {
  const keep = opts.keep ?? 64 * 1024;
  const stdio = ['ignore', 'pipe', opts.stderr ?? 'pipe', ...(opts.ipc ? ['ipc' as const] : [])] as const;
  const child = spawn(opts.command ?? process.execPath, opts.args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: opts.env ?? process.env,
    stdio: [...stdio],
  });
  everyChild.add(child);
  const kept = { stdout: outputTail(keep), stderr: outputTail(keep), output: outputTail(keep) };
  const read = (stream: 'stdout' | 'stderr') => {
    const input = child[stream];
    if (!input) return;
    // Kept as written (a CLI's exact output), read in lines for onLine; either keeps the pipe drained.
    input.setEncoding('utf8').on('data', (text: string) => {
      kept[stream].add(text);
      kept.output.add(text);
    });
    const { onLine } = opts;
    if (onLine) createInterface({ input, crlfDelay: Infinity }).on('line', (line) => onLine(line, stream));
  };
  read('stdout');
  read('stderr');

  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<Exit>((resolve) => {
    const done = (exit: Exit) => {
      everyChild.delete(child);
      opts.group?.running.delete(handle);
      resolve(exit);
    };
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', () => done({ code: null, signal: null })); // could not spawn at all
  });
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    // A grandchild that inherited the pipes may hold them open: do not wait for it.
    void exited.then(() => setTimeout(resolve, 1_000).unref());
  });
  let stopping: Promise<Exit> | undefined;
  const handle: Child = {
    name: opts.name,
    pid: child.pid!,
    process: child,
    exited,
    closed,
    stdout: kept.stdout.text,
    stderr: kept.stderr.text,
    output: kept.output.text,
    hasExited,
    kill(signal = 'SIGTERM') {
      if (!hasExited()) child.kill(signal);
    },
    stop(signal = opts.stopSignal ?? 'SIGTERM', graceMs = opts.graceMs ?? 5_000) {
      stopping ??= (async () => {
        if (hasExited()) return exited;
        child.kill(signal);
        const forced = setTimeout(() => child.kill('SIGKILL'), graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(forced);
        }
      })();
      return stopping;
    },
  };
  opts.group?.running.add(handle);
  return handle;
}

export interface StartOptions<T> extends ChildOptions {
  /** What the ready line says, or undefined for any other stdout line. */
  ready: (line: string) => T | undefined;
  timeoutMs: number;
}

/**
 * Spawns a child and resolves once `ready` recognizes a line of its stdout. If it exits first or
 * stays silent past `timeoutMs`, it is stopped and the error carries what it printed (unless the
 * caller already saw every line through `onLine`).
 */
export async function startChild<T>(opts: StartOptions<T>): Promise<Child & { ready: T }> {
  let found: (value: T) => void = () => {};
  const readyLine = new Promise<T>((resolve) => (found = resolve));
  let waiting = true;
  const child = spawnChild({
    ...opts,
    onLine(line, stream) {
      if (waiting && stream === 'stdout') {
        const value = opts.ready(line);
        if (value !== undefined) {
          waiting = false;
          found(value);
        }
      }
      opts.onLine?.(line, stream);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = await Promise.race([
      readyLine,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${opts.name} was not ready within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
      }),
      child.exited.then(({ code, signal }) => {
        if (waiting) throw new Error(`${opts.name} exited (code ${code}, signal ${signal}) before it was ready`);
        return undefined as never;
      }),
    ]);
    return Object.assign(child, { ready });
  } catch (err) {
    // stop(), not SIGKILL: a supervisor (npm start) must get to stop its own children.
    await child.stop();
    await child.closed;
    // The caller that saw every line through onLine needs no copy of them.
    if (!opts.onLine) (err as Error).message += `; it printed:\n${child.output()}`;
    throw err;
  } finally {
    waiting = false;
    clearTimeout(timer);
  }
}

/** The `{"event":"listening","url":...}` line Tessera's servers print on stdout once they listen. */
export function listeningLine(line: string): { url: string; port: number } | undefined {
  let event: { event?: unknown; url?: unknown; port?: unknown };
  try {
    event = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (event?.event !== 'listening' || typeof event.url !== 'string') return undefined;
  return { url: event.url, port: typeof event.port === 'number' ? event.port : Number(new URL(event.url).port) };
}
