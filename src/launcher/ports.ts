// Finding free loopback ports for a cluster whose datanodes listen on P+1..P+N (tests, bench).
import { readFileSync } from 'node:fs';
import net from 'node:net';

const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer().once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/**
 * The ports the kernel gives the source end of outgoing connections (Linux: from /proc; else
 * the IANA range). A port in it that is free now can be some connection's source port the next
 * moment, and a server then started on it fails with EADDRINUSE.
 */
export function ephemeralPortRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low > 0 && high >= low) return { low, high };
  } catch {
    // not Linux
  }
  return { low: 49_152, high: 65_535 };
}

const LOWEST = 20_000;

/**
 * A base port P with P..P+count-1 free now, below the ephemeral range (so no outgoing connection
 * takes one between this check and the server's start, or while a server restarts on it): datanodes
 * keep their URL across restarts.
 */
export async function freePortBlock(count: number): Promise<number> {
  // Where the ephemeral range starts low (< 20,000 + room), the old span: some luck is needed.
  const top = Math.min(50_000, ephemeralPortRange().low);
  const [from, to] = top - count > LOWEST + 1000 ? [LOWEST, top - count] : [LOWEST, 50_000 - count];
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from + 1));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portIsFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free block of ports');
}
