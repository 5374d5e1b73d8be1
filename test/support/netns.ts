// A datanode behind its own network namespace, linked to the host by a veth pair, so a test can
// cut the link (a partition: packets vanish, nothing answers) instead of killing the process.
// Needs root and `ip netns`; `netnsUnavailable()` says why not, so the test can skip itself.
import { execFileSync } from 'node:child_process';
import { listeningLine, startChild } from '../../src/launcher/child-process.ts';
import { nodeArgsFor } from '../../src/launcher/server-bundle.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Undefined when network namespaces work here, else the reason they do not. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root for ip netns';
  const probe = `tsprobe${process.pid % 100000}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `ip netns add failed: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`;
  }
}

export interface PartitionedDatanode {
  url: string;
  /** Cuts the link from inside the namespace: the host keeps its route, so packets are dropped, not rerouted. */
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

/** Starts `datanode/main.ts` inside a fresh namespace reachable at 10.x.y.2 from the host. */
export async function startPartitionableDatanode(opts: { dataDir: string; secret: string }): Promise<PartitionedDatanode> {
  const tag = `ts${process.pid % 10000}${Math.floor(Math.random() * 1000)}`;
  const ns = `${tag}ns`;
  const host = `${tag}h`;
  const inner = `${tag}n`;
  const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
  const hostIp = `${subnet}.1`;
  const innerIp = `${subnet}.2`;
  const teardown = () => {
    try {
      ip('link', 'del', host);
    } catch {
      /* already gone */
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      /* already gone */
    }
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', inner);
    ip('link', 'set', inner, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', host);
    ip('link', 'set', host, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${innerIp}/30`, 'dev', inner);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', inner, 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    teardown();
    throw err;
  }

  const datanode = await startChild({
    name: 'namespaced datanode',
    command: 'ip',
    args: [
      'netns',
      'exec',
      ns,
      process.execPath,
      ...nodeArgsFor('datanode/main.ts'),
      '--host',
      innerIp,
      '--port',
      '0',
      '--data-dir',
      opts.dataDir,
      '--health-interval-ms',
      '100',
    ],
    env: { ...process.env, TESSERA_CLUSTER_SECRET: opts.secret, LOG_LEVEL: 'warn' },
    timeoutMs: 20_000,
    ready: listeningLine,
  }).catch((err: unknown) => {
    teardown();
    throw err;
  });

  return {
    url: datanode.ready.url,
    cut: () => void ip('netns', 'exec', ns, 'ip', 'link', 'set', inner, 'down'),
    heal: () => void ip('netns', 'exec', ns, 'ip', 'link', 'set', inner, 'up'),
    async close() {
      await datanode.stop('SIGKILL');
      teardown();
    },
  };
}
