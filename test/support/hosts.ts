// Separate "hosts" on one machine: network namespaces on one bridge (a switch), each with its own
// address, so a test can cut one pair of hosts apart (packets vanish, nothing refuses) while both
// still reach everyone else, and a TCP relay that stands for the network path between one host
// and a server (the database) and can be cut. Needs root and `ip` (as netns.ts; its
// netnsUnavailable() says why not). Everything made here is removed by close().
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { listeningLine, startChild, type Child } from '../../src/launcher/child-process.ts';
import { nodeArgsFor } from '../../src/launcher/server-bundle.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const quietly = (fn: () => void) => {
  try {
    fn();
  } catch {
    /* already gone */
  }
};

export interface Host {
  name: string;
  /** Its network namespace (for `ip netns exec`). */
  ns: string;
  /** Its address on the switch. */
  address: string;
  /** Starts `entry` (through tsx) inside this host; resolves on its listening line. */
  start(name: string, entry: string, args: string[], env: NodeJS.ProcessEnv): Promise<Child & { ready: { url: string; port: number } }>;
}

export interface Switch {
  /** The machine's own address on the switch (processes outside any namespace listen there). */
  address: string;
  host(name: string): Host;
  /** Packets between the two hosts vanish, both ways (each sends them to a MAC nobody has). */
  cut(a: Host, b: Host): void;
  heal(a: Host, b: Host): void;
  close(): void;
}

const BOGUS_MAC = '02:00:00:00:7e:55';

/** A bridge with the machine on .1, and hosts added on .11, .12, ... */
export function createSwitch(): Switch {
  const tag = `ts${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
  const bridge = `${tag}br`;
  const subnet = `10.${150 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
  const address = `${subnet}.1`;
  const made: { ns: string; link: string }[] = [];
  const hosts: (Host & { ns: string; dev: string })[] = [];
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('addr', 'add', `${address}/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');

  const neighbour = (from: { ns: string; dev: string }, to: { address: string }, mac: string | undefined) =>
    mac
      ? ip('netns', 'exec', from.ns, 'ip', 'neigh', 'replace', to.address, 'lladdr', mac, 'dev', from.dev, 'nud', 'permanent')
      : ip('netns', 'exec', from.ns, 'ip', 'neigh', 'del', to.address, 'dev', from.dev);

  return {
    address,
    host(name) {
      const n = hosts.length + 1;
      const ns = `${tag}n${n}`;
      const outer = `${tag}o${n}`;
      const dev = `${tag}i${n}`;
      const hostAddress = `${subnet}.${10 + n}`;
      ip('netns', 'add', ns);
      made.push({ ns, link: outer });
      ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', dev);
      ip('link', 'set', dev, 'netns', ns);
      ip('link', 'set', outer, 'master', bridge);
      ip('link', 'set', outer, 'up');
      ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${hostAddress}/24`, 'dev', dev);
      ip('netns', 'exec', ns, 'ip', 'link', 'set', dev, 'up');
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
      const host = {
        name,
        ns,
        dev,
        address: hostAddress,
        start: (childName: string, entry: string, args: string[], env: NodeJS.ProcessEnv) =>
          startChild({
            name: childName,
            command: 'ip',
            args: ['netns', 'exec', ns, process.execPath, ...nodeArgsFor(entry), ...args],
            env,
            timeoutMs: 30_000,
            ready: listeningLine,
          }),
      };
      hosts.push(host);
      return host;
    },
    cut(a, b) {
      const [x, y] = [a, b].map((h) => hosts.find((k) => k.name === h.name)!);
      neighbour(x, y, BOGUS_MAC);
      neighbour(y, x, BOGUS_MAC);
    },
    heal(a, b) {
      const [x, y] = [a, b].map((h) => hosts.find((k) => k.name === h.name)!);
      quietly(() => neighbour(x, y, undefined));
      quietly(() => neighbour(y, x, undefined));
    },
    close() {
      for (const { ns, link } of made) {
        quietly(() => ip('link', 'del', link));
        quietly(() => ip('netns', 'del', ns));
      }
      quietly(() => ip('link', 'del', bridge));
    },
  };
}

export interface Relay {
  /** host:port to connect to instead of the server. */
  host: string;
  port: number;
  /** The path goes dark: nothing more passes either way on open connections, new ones get no answer. */
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

/** A TCP relay on `listenHost` to `target` (host:port): the network path between a host and a server. */
export async function startRelay(listenHost: string, target: { host: string; port: number }): Promise<Relay> {
  let dark = false;
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (dark) return client.pause(); // accepted, never answered: a SYN into the void would not even be accepted, but the effect on the client is the same wait
    const upstream = net.connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.add([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: listenHost,
    port,
    cut() {
      dark = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    heal() {
      dark = false;
      // Connections cut mid-stream have lost bytes: end them, as a real network's would time out.
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
