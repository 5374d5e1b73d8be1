// One Tessera process (coordinator or datanode) run by `npm start`: spawned through tsx, ready
// once it prints its listening line, its logs passed through with a name prefix.
import type { ChildProcess } from 'node:child_process';
import { listeningLine, startChild, type Exit } from './child-process.ts';
import { humanLogLine } from './log-lines.ts';

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
    args: [...nodeArgs, '--import', 'tsx', entry, ...args],
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
