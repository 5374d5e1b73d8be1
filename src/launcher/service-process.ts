// One Tessera process (coordinator or datanode) run by `npm start`: spawned from the server bundle
// (server-bundle.ts; through tsx without one), ready once it prints its listening line, its logs
// passed through with a name prefix.
import type { ChildProcess } from 'node:child_process';
import { listeningLine, startChild, type Exit } from './child-process.ts';
import { humanLogLine } from './log-lines.ts';
import { nodeArgsFor } from './server-bundle.ts';

/**
 * V8 heap settings of the coordinator, for its data path (npm run bench shows their effect;
 * `npm run coordinator` in package.json sets the same):
 * - small semi-spaces (V8 grows them otherwise): fragment buffers die sooner and the idle heap is
 *   smaller, which keeps peak RSS down during a large upload;
 * - a larger initial old-space limit: every fragment is megabytes of socket buffers, and with
 *   V8's small starting limit that churn forces a full mark-compact every few fragments moved;
 * - GC on the main thread only: those socket buffers still force a scavenge every few MB and a
 *   mark-compact every few tens of MB moved ("external memory pressure"), and V8's parallel and
 *   concurrent GC spread each over 4 helper threads whose start-up and hand-over cost more CPU than
 *   the work (measured on 2 cores, alternating restarts: coordinator CPU per MB of a 256 MB
 *   download about 1.9 -> 1.55 ms, of a chunked upload 3.4 -> 3.2 ms);
 * - no memory reducer: once allocation stops for a few seconds, V8's memory reducer runs
 *   memory-reducing mark-compacts, which drop the maps only in-flight requests' objects use, and
 *   every optimized function that embeds one is thrown away at once ("weak objects" deopts: all
 *   ~100 of the request path's). The next burst then runs unoptimized while TurboFan compiles it
 *   again (measured on 2 cores, 1,500 PUTs of 100 KB after 30 s idle: ~150 compiles taking 1.5 s of
 *   CPU, coordinator CPU per image 2.8 -> 2.0 ms with the reducer off, as in a burst without the
 *   pause). What it costs: the heap of an idle coordinator is not shrunk (its RSS after the burst
 *   stays about 40 MB higher).
 */
export const COORDINATOR_NODE_ARGS = [
  '--max-semi-space-size=2',
  '--initial-old-space-size=64',
  '--single-threaded-gc',
  '--no-memory-reducer',
];
/**
 * V8 settings of a datanode: GC on the main thread only, as the coordinator's (above). Its request
 * and file buffers churn the same way; measured on 2 cores, alternating restarts under load ~10:
 * datanode CPU per MB of a chunked upload (both replicas) about 7.3 -> 6.3 ms.
 */
export const DATANODE_NODE_ARGS = ['--single-threaded-gc'];
/** Two malloc arenas, not one per thread that allocates (V8's helpers, libuv's pool): less RSS. */
export const COORDINATOR_ENV = { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };

export interface ServiceProcess {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<Exit>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export async function startServiceProcess(
  name: string,
  entry: string,
  args: string[],
  {
    timeoutMs = 30_000,
    nodeArgs = [] as string[],
    env = {} as Record<string, string>,
    onLog = (line: string) => process.stderr.write(humanLogLine(name, line) + '\n'),
  } = {},
): Promise<ServiceProcess> {
  const child = await startChild({
    name,
    args: [...nodeArgs, ...nodeArgsFor(entry), ...args],
    env: { ...process.env, ...env },
    timeoutMs,
    ready: listeningLine,
    // Its pino log (stderr) and anything on stdout that is not one of its JSON events.
    onLine: (line, stream) => {
      if (stream === 'stderr' || !isJson(line)) onLog(line);
    },
    keep: 0,
    graceMs: 10_000,
  });
  return {
    name,
    url: child.ready.url,
    pid: child.pid,
    child: child.process,
    exited: child.exited,
    async stop(graceMs?: number) {
      await child.stop('SIGTERM', graceMs);
    },
  };
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
