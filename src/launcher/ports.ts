// Finding free loopback ports for a cluster whose datanodes listen on P+1..P+N (tests, bench).
import { readFileSync } from 'node:fs';
import net from 'node:net';

const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer().once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/**
 * The ports the kernel gives the source end of outgoing connections (Linux: from /proc; where it
 * cannot be read, from Linux's default start, 32768, which is below macOS's and Windows' too). A
 * port in it that is free now can be some connection's source port the next moment, and a server
 * then started on it fails with EADDRINUSE.
 */
export function ephemeralPortRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low > 0 && high >= low) return { low, high };
  } catch {
    // not Linux, or /proc masked (a sandbox)
  }
  return { low: 32_768, high: 65_535 };
}

const LOWEST_PORT = 20_000;

/**
 * Where freePortBlock picks a block of `count` ports: below the ephemeral range when it starts
 * high enough to leave room (1,000 ports) above 20,000; else the old span up to 50,000, where some
 * luck is needed (`belowEphemeral` false).
 */
export function portSpan(count: number): { from: number; to: number; belowEphemeral: boolean } {
  const top = Math.min(50_000, ephemeralPortRange().low);
  const belowEphemeral = top - count > LOWEST_PORT + 1000;
  return { from: LOWEST_PORT, to: (belowEphemeral ? top : 50_000) - count, belowEphemeral };
}

/**
 * A base port P with P..P+count-1 free now, below the ephemeral range (so no outgoing connection
 * takes one between this check and the server's start, or while a server restarts on it): datanodes
 * keep their URL across restarts.
 */
export async function freePortBlock(count: number): Promise<number> {
  const { from, to } = portSpan(count);
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from + 1));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portIsFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free block of ports');
}
