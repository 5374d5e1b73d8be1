// freePortBlock (tests and benches start servers on its ports, and restart them on the same ones):
// its blocks are free and lie outside the kernel's range for outgoing connections' source ports,
// where a port free at the check can be taken by a connection before the server binds it
// (EADDRINUSE: a connected socket's port refuses a listener, SO_REUSEADDR or not).
import net from 'node:net';
import { expect, it } from 'vitest';
import { ephemeralPortRange, freePortBlock, portSpan } from '../src/launcher/ports.ts';

it('a block is free and outside the ephemeral port range', async (ctx) => {
  const { low, high } = ephemeralPortRange();
  if (!portSpan(4).belowEphemeral)
    ctx.skip(`this host's ephemeral range starts at ${low}: no room below it, freePortBlock uses the old span`);
  for (let i = 0; i < 100; i++) {
    const base = await freePortBlock(4);
    for (const port of [base, base + 3]) expect(port < low || port > high, `${port} in ${low}-${high}`).toBe(true);
  }
  const base = await freePortBlock(2);
  const servers = await Promise.all(
    [base, base + 1].map(
      (port) =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer().once('error', reject);
          server.listen(port, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});
