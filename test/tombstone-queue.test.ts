// The tombstone queue keeps one round in flight: tombstones queued meanwhile go out together, in
// one POST /deletions per datanode, and one counts as delivered once any of its datanodes took
// it. Real in-process datanodes; the request count is read off the queue's put.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { createDatanode } from '../datanode/server.ts';
import { createDatanodeClient } from '../src/cluster/datanode-client.ts';
import { createTombstoneQueue } from '../src/cluster/tombstone-queue.ts';
import type { ImageTombstone } from '../src/shared/datanode-api.ts';

const SECRET = 'tombstone-queue-secret';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startNode() {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-tq-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const node = await createDatanode({ dataDir, secret: SECRET });
  const { url } = await node.listen(0, '127.0.0.1');
  cleanups.push(() => node.close());
  return { node, url };
}

const tombstone = (image: string): ImageTombstone => ({ kind: 'tombstone', image, deletedAt: 1 });

it('sends the tombstones queued during a round together, one request per datanode, and counts each delivered once', async () => {
  const a = await startNode();
  const b = await startNode();
  const client = createDatanodeClient({
    secret: SECRET,
    identity: { clusterId: () => 'cluster-tq-test', expectedNodeId: () => undefined },
  });
  cleanups.push(async () => client.close());
  // A third target that refuses every connection: the others' answers are enough.
  const urls: Record<string, string> = { a: a.url, b: b.url, gone: 'http://127.0.0.1:1' };
  const requests: [string, number][] = [];
  const delivered: string[] = [];
  const queue = createTombstoneQueue({
    log: pino({ level: 'silent' }),
    targets: () => ['a', 'b', 'gone'],
    put: (id, tombstones) => {
      requests.push([id, tombstones.length]);
      return client.deleteBatch(urls[id], { tombstones, fragments: [] });
    },
    delivered: (key) => delivered.push(key),
  });

  queue.push(tombstone('first'), new Set());
  // The first round starts after this turn of the event loop; these five wait for it to end.
  await new Promise((resolve) => setImmediate(resolve));
  for (const key of ['k1', 'k2', 'k3', 'k4', 'k5']) queue.push(tombstone(key), new Set());
  await queue.flush(10_000);

  expect(requests.sort()).toEqual(
    [
      ['a', 1],
      ['b', 1],
      ['gone', 1],
      ['a', 5],
      ['b', 5],
      ['gone', 5],
    ].sort(),
  );
  expect(delivered.sort()).toEqual(['first', 'k1', 'k2', 'k3', 'k4', 'k5']);
  for (const { node } of [a, b])
    expect(
      node.records
        .list()
        .tombstones.map((t) => t.image)
        .sort(),
    ).toEqual(['first', 'k1', 'k2', 'k3', 'k4', 'k5']);
});

// An acknowledged delete survives a power failure (synchronous=NORMAL) only once the index's WAL
// is synced or its tombstone is on a datanode: tombstone rounds never wait for a burst of deletes
// to pause (TOMBSTONE_ROUNDS), unlike the replica file deletions. Fake timers and the test's own
// clock: a delete every 10 ms, never a pause.
it('sends tombstones during a steady burst of deletes within ~50 ms, not once the burst pauses', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
  try {
    let now = 0;
    const sentAt = new Map<string, number>();
    const queue = createTombstoneQueue({
      log: pino({ level: 'silent' }),
      targets: () => ['a'],
      put: async (_id, tombstones) => {
        for (const t of tombstones) sentAt.set(t.image, now);
      },
      delivered: () => {},
      clock: () => now,
    });
    const pushedAt = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      pushedAt.set(`k${i}`, now);
      queue.push(tombstone(`k${i}`), new Set());
      await vi.advanceTimersByTimeAsync(0);
      for (let step = 0; step < 10; step++) {
        now += 1;
        await vi.advanceTimersByTimeAsync(1);
      }
    }
    for (const [key, at] of pushedAt) {
      if (at > now - 60) continue; // the last ones may still be waiting for their round
      expect(sentAt.get(key), key).toBeDefined();
      expect(sentAt.get(key)! - at, key).toBeLessThanOrEqual(50);
    }
  } finally {
    vi.useRealTimers();
  }
});
