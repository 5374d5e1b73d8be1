// A datanode that hangs (a partition, not a crash) holds a request until its deadline; once the
// monitor calls it DOWN, abandon() fails its requests in flight so writers fall back at once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDatanodeClient } from '../src/cluster/datanode-client.ts';

let server: http.Server;
let url: string;
beforeAll(async () => {
  server = http.createServer(() => {}); // reads nothing, answers nothing
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

it('fails the requests in flight to an abandoned datanode, not at the deadline', async () => {
  const client = createDatanodeClient({ secret: 's', timeoutMs: 60_000 });
  try {
    const put = client.putFragment(url, 'frag', Buffer.alloc(1024), 'a'.repeat(64));
    const get = client.getFragment(url, 'other');
    const outcome = Promise.allSettled([put, get]);
    await new Promise((r) => setTimeout(r, 100)); // both are on the wire now
    client.abandon(url);
    const [p, g] = await outcome; // without abandon() these would hang for 60 s and time the test out
    expect(p.status).toBe('rejected');
    expect(g.status).toBe('rejected');
    expect(String((p as PromiseRejectedResult).reason)).toMatch(/DOWN/);
  } finally {
    client.close();
  }
}, 10_000);
