// Starts `datanode/main.ts` as a real child process for tests about processes (crash, restart,
// flags, registration); shared with the coordinator's tests, so it never leaves a process behind.
import { ChildGroup, listeningLine, REPO_ROOT, spawnChild, startChild, type Child, type Exit } from '../../src/launcher/child-process.ts';
import { nodeArgsFor } from '../../src/launcher/server-bundle.ts';

export const repoRoot = REPO_ROOT;

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

/** A Tessera server started by a test: `stop()` is SIGTERM, then SIGKILL after 5 s. */
export type ServerProcess = Child & { url: string; port: number };
export type DatanodeProcess = ServerProcess;

export interface DatanodeExit extends Exit {
  stdout: string;
  stderr: string;
}

const datanodes = new ChildGroup();

/** A test child's environment: ours without the `drop`ped variables, then `set` (undefined removes). */
export function childEnv(drop: (key: string) => boolean, set: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!drop(key)) env[key] = value;
  for (const [key, value] of Object.entries(set)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Starts `entry` (src/launcher/server-bundle.ts) and resolves once it prints its listening line (tests' servers). */
export async function startServerProcess(
  name: string,
  entry: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  group: ChildGroup,
  timeoutMs: number,
): Promise<ServerProcess> {
  const child = await startChild({ name, args: [...nodeArgsFor(entry), ...args], env, group, timeoutMs, ready: listeningLine });
  return Object.assign(child, child.ready);
}

function datanodeArgs(opts: DatanodeProcessOptions): string[] {
  const args = ['--port', String(opts.port ?? 0), '--data-dir', opts.dataDir];
  if (opts.secretFile !== undefined) args.push('--secret-file', opts.secretFile);
  if (opts.coordinator !== undefined) args.push('--coordinator', opts.coordinator);
  return [...args, ...(opts.extraArgs ?? [])];
}

// An inherited secret would hide a test's "no secret" case.
const datanodeEnv = (opts: DatanodeProcessOptions) =>
  childEnv((key) => key === 'TESSERA_CLUSTER_SECRET', { TESSERA_CLUSTER_SECRET: opts.secret, ...opts.env });

/** Starts a datanode and resolves once it prints its listening line. */
export function startDatanodeProcess(opts: DatanodeProcessOptions): Promise<DatanodeProcess> {
  return startServerProcess('datanode', 'datanode/main.ts', datanodeArgs(opts), datanodeEnv(opts), datanodes, opts.timeoutMs ?? 15_000);
}

/** Runs a datanode expected to stop on its own (bad flags, no secret): its exit and output. */
export async function runDatanodeUntilExit(opts: DatanodeProcessOptions, timeoutMs = 15_000): Promise<DatanodeExit> {
  const child = spawnChild({
    name: 'datanode',
    args: [...nodeArgsFor('datanode/main.ts'), ...datanodeArgs(opts)],
    env: datanodeEnv(opts),
    group: datanodes,
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = await child.exited;
  clearTimeout(timer);
  await child.closed;
  return { ...exit, stdout: child.stdout(), stderr: child.stderr() };
}

/** Stops every datanode process this module started and that still runs (for afterAll). */
export const stopAllDatanodeProcesses = () => datanodes.stopAll();
