// The `tessera` command run as a user runs it (node bin/tessera.js, a real process), with an
// environment holding only what the test gives it: no TESSERA_* of ours, no vitest variables.
import { join } from 'node:path';
import { ChildGroup, REPO_ROOT, spawnChild, type Child } from '../../src/launcher/child-process.ts';
import { childEnv } from './datanode-process.ts';

const BIN = join(REPO_ROOT, 'bin', 'tessera.js');
const commands = new ChildGroup();

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: Child;
  /** Everything it printed so far. */
  output(): { stdout: string; stderr: string };
  /** Its exit status and whole output, once it has exited and its pipes are read to the end. */
  done: Promise<CliResult>;
}

/** The environment of a user with only `set` configured. */
export const cliEnv = (set: Record<string, string> = {}) =>
  childEnv((key) => key.startsWith('TESSERA_') || key.startsWith('VITEST') || key === 'NODE_OPTIONS', set);

/** Starts `tessera <args>` in `cwd`; afterAll ends any still running with stopAllCli(). */
export function startCli(args: string[], cwd: string, env: Record<string, string> = {}): CliRun {
  const child = spawnChild({
    name: 'tessera',
    args: [BIN, ...args],
    cwd,
    env: cliEnv(env),
    keep: Infinity,
    stopSignal: 'SIGKILL',
    group: commands,
  });
  const done = (async () => {
    const { code } = await child.exited;
    await child.closed;
    return { code, stdout: child.stdout(), stderr: child.stderr() };
  })();
  return { child, output: () => ({ stdout: child.stdout(), stderr: child.stderr() }), done };
}

/** `tessera <args>` in `cwd`, to its end. */
export const runCli = (args: string[], cwd: string, env: Record<string, string> = {}) => startCli(args, cwd, env).done;

/** Kills every `tessera` process still running (for afterAll). */
export const stopAllCli = () => commands.stopAll();
