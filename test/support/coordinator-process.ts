// Starts `src/main.ts` (the coordinator alone) as a real child process for tests about processes
// (kill -9, restart on the same data dir); it never leaves a process behind.
import { ChildGroup } from '../../src/launcher/child-process.ts';
import { childEnv, startServerProcess, type ServerProcess } from './datanode-process.ts';
import { readAdminToken, rememberToken } from './tokens.ts';
import { metadataFor } from './test-metadata.ts';

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

export type CoordinatorProcess = ServerProcess & {
  /** The admin token it wrote into <data-dir>/admin.token (sent by the helpers by default). */
  token: string;
};

const coordinators = new ChildGroup();

/** Starts a coordinator and resolves once it prints `{"event":"listening",...}` on stdout. */
export async function startCoordinatorProcess(opts: CoordinatorProcessOptions): Promise<CoordinatorProcess> {
  const args = ['--port', String(opts.port ?? 0), '--data-dir', opts.dataDir];
  if (opts.secret === undefined) args.push('--insecure');
  args.push(...(opts.args ?? []));
  // TESSERA_TEST_METADATA=postgres: the index of this data dir in a PostgreSQL database of its own.
  const metadata = opts.args?.includes('--metadata') ? undefined : await metadataFor(opts.dataDir);
  if (metadata) args.push('--metadata', metadata);
  // Inherited TESSERA_* settings (secret, port, public URL...) would change what the test runs.
  const env = childEnv((key) => key.startsWith('TESSERA_'), { TESSERA_CLUSTER_SECRET: opts.secret, ...opts.env });
  const coordinator = await startServerProcess('coordinator', 'src/main.ts', args, env, coordinators, opts.timeoutMs ?? 20_000);
  const token = readAdminToken(opts.dataDir);
  rememberToken(coordinator.url, token);
  return Object.assign(coordinator, { token });
}

/** Stops every coordinator process this module started that still runs (for afterAll). */
export const stopAllCoordinatorProcesses = () => coordinators.stopAll();
