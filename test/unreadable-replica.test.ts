// A replica the datanode cannot read (here a directory in place of its file: EISDIR, answered
// as 500 FRAGMENT_UNREADABLE) is a bad replica, not an unreachable datanode: a read and the
// scrubber both report it, and repair rewrites it from the good copy (the directory is kept
// aside in quarantine/, not deleted). Real datanode processes.
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { until } from './support/poll.ts';
import { watchEvents } from './support/faults.ts';
import { bytesOf, download, uploadImage } from './support/images.ts';

const SECRET = 'unreadable-secret';
const FRAGMENT = 32 * 1024;

let dir: string;
const nodes: DatanodeProcess[] = [];
let coordinator: Awaited<ReturnType<typeof startCoordinatorOver>>;
const fragmentsDir = (i: number) => join(dir, `datanode-${i}`, 'fragments');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Puts a directory (holding a file) where datanode i's replica of `id` was. */
async function makeUnreadable(i: number, id: string): Promise<void> {
  const path = join(fragmentsDir(i), id);
  await rm(path);
  await mkdir(path);
  await writeFile(join(path, 'not-a-fragment'), 'x');
}

async function isRepaired(i: number, id: string, expected: string): Promise<boolean> {
  const entry = await lstat(join(fragmentsDir(i), id)).catch(() => undefined);
  return entry?.isFile() === true && sha(await readFile(join(fragmentsDir(i), id))) === expected;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-unreadable-'));
  for (const i of [0, 1]) nodes.push(await startDatanodeProcess({ dataDir: join(dir, `datanode-${i}`), secret: SECRET }));
  coordinator = await startCoordinatorOver(
    nodes.map((n) => n.url),
    // A loaded test machine must not make a datanode DOWN (then reads and the scrubber skip it).
    {
      secret: SECRET,
      replicationFactor: 2,
      fragmentSize: FRAGMENT,
      scrubBytesPerSec: 0,
      repairAfterSec: 3600,
      downAfterFailures: 10,
      thresholds: { cpuPercent: 100, memoryPercent: 100, diskPercent: 100 },
    },
  );
}, 60_000);

afterAll(async () => {
  await coordinator?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('unreadable replicas', () => {
  it('a read that meets an unreadable replica serves the good copy and repair rewrites the bad one', async () => {
    const cluster = asCluster(coordinator);
    const events = watchEvents(coordinator.app);
    const png = bytesOf(4 * FRAGMENT + 5, 11);
    await uploadImage(cluster, 'unreadable/read.png', png, 'image/png');
    const ids = (await readdir(fragmentsDir(0))).sort();
    // Every fragment is on both datanodes (R = 2): make unreadable the replica a read asks first
    // (the first holder in the index), so the reads themselves meet every one of them.
    const { catalog, registry } = coordinator.app;
    const expected = new Map<string, { node: number; sha256: string }>();
    for (const id of ids) {
      const first = registry.get((await catalog.replicasOf(id))[0])!.url;
      const node = nodes.findIndex((n) => n.url === first);
      expected.set(id, { node, sha256: sha(await readFile(join(fragmentsDir(node), id))) });
      await makeUnreadable(node, id);
    }
    const { res, body } = await download(cluster, 'unreadable/read.png');
    expect(res.status).toBe(200);
    expect(body.equals(png)).toBe(true);
    await until(
      async () => {
        for (const [id, { node, sha256 }] of expected) if (!(await isRepaired(node, id, sha256))) return false;
        return true;
      },
      'every unreadable replica rewritten from the good copy',
      30_000,
    );
    // Found as unreadable by the reads themselves (reconciliation would only call it missing; a
    // fault it announced first is not announced twice, but the repair names its reason).
    const byRead = events.received.filter(
      (e) => (e.kind === 'ReplicaFault' || e.kind === 'ReplicaRepaired') && e.reason === 'unreadable',
    ) as { fragmentId: string }[];
    expect(new Set(byRead.map((e) => e.fragmentId))).toEqual(new Set(ids));
    events.close();
    // What was in the way is kept for the operator, not deleted.
    const quarantined = await Promise.all([0, 1].map((i) => readdir(join(dir, `datanode-${i}`, 'quarantine')).catch(() => [])));
    expect(quarantined.flat()).toHaveLength(ids.length);
    expect(coordinator.app.registry.all().every((n) => n.status !== 'DOWN')).toBe(true);
  }, 60_000);

  it('the scrubber finds an unreadable replica without any client read and it is rewritten', async () => {
    await coordinator.restart({ scrubBytesPerSec: 64 * 1024 * 1024, scrubPauseSec: 0 });
    // Only the scrubber may find it: reconciliation would see the directory as a missing file
    // and rewrite it first (also a repair, but not the path under test).
    await coordinator.app.reconciler.stop();
    const cluster = asCluster(coordinator);
    const events = watchEvents(coordinator.app);
    const png = bytesOf(3 * FRAGMENT, 12);
    const earlier = new Set(await readdir(fragmentsDir(1)));
    await uploadImage(cluster, 'unreadable/scrub.png', png, 'image/png');
    const id = (await readdir(fragmentsDir(1))).find((f) => !earlier.has(f))!;
    const hash = sha(await readFile(join(fragmentsDir(1), id)));
    // The scrubber runs without pause: held while the file is swapped for a directory, so it
    // cannot read in between (and rightly call the replica missing).
    await coordinator.app.scrubber.stop();
    await makeUnreadable(1, id);
    coordinator.app.scrubber.start();
    // Reported as unreadable (a fault already announced as missing by reconciliation is not
    // announced twice, so the repair event, which names the reason, counts as well).
    await events.waitFor(
      (e) => (e.kind === 'ReplicaFault' || e.kind === 'ReplicaRepaired') && e.fragmentId === id && e.reason === 'unreadable',
      'the scrubber reports it unreadable',
      30_000,
    );
    await until(() => isRepaired(1, id, hash), 'the scrubbed unreadable replica rewritten', 30_000);
    events.close();
  }, 60_000);
});
