// Re-replication: a datanode DOWN past --repair-after has its fragments copied to the live ones
// until each has R verified copies again (underReplicatedFragments back to 0, files on disk);
// when it returns with its data, the extra copies go (placement's choice: its own copies stay),
// never leaving a fragment below R or an orphan file. Decommission: drain, the fragments move,
// then the datanode can be removed.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { datanodeIds, fragmentFileList, settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import { auditDisks, fragmentPath, fragmentsOf, restartDatanode, stopDatanode, waitForStatus, watchEvents } from './support/faults.ts';
import { bytesOf, download, sha256, sliceOf, uploadImage } from './support/images.ts';

const FRAGMENT = 16 * 1024;
const auth = { authorization: `Bearer ${TEST_SECRET}` };
const underReplicated = async (cluster: TestCluster) =>
  (await cluster.gql('{ cluster { underReplicatedFragments } }')).cluster.underReplicatedFragments as number;

async function storeImages(cluster: TestCluster, count: number, seed: number) {
  const stored = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const bytes = bytesOf(4 * FRAGMENT + 33 * i + 7, seed + i);
    await uploadImage(cluster, `img-${seed}-${i}.png`, bytes);
    stored.set(`img-${seed}-${i}.png`, bytes);
  }
  return stored;
}

/**
 * Every fragment of every image: exactly `copies` files with its bytes, all on `allowed` datanodes
 * (replicas recorded on the `ignored` ones, a lost datanode's, are not counted).
 */
async function expectCopies(cluster: TestCluster, stored: Map<string, Buffer>, allowed: number[], copies = 2, ignored: number[] = []) {
  for (const [name, bytes] of stored) {
    for (const f of await fragmentsOf(cluster, name)) {
      const holders = f.holders.filter((n) => !ignored.includes(n));
      expect(holders.length, `${name}#${f.idx} replicas`).toBe(copies);
      for (const n of holders) {
        expect(allowed, `${name}#${f.idx} on ${n}`).toContain(n);
        const file = await readFile(fragmentPath(cluster, n, f.id));
        expect(file.equals(sliceOf(bytes, FRAGMENT, f.idx)), `${name}#${f.idx} on ${n}`).toBe(true);
      }
    }
  }
}

async function expectDownloads(cluster: TestCluster, stored: Map<string, Buffer>) {
  for (const [name, bytes] of stored) {
    const { res, body } = await download(cluster, name);
    expect(res.status).toBe(200);
    expect(sha256(body)).toBe(sha256(bytes));
  }
}

describe('re-replication after a datanode is lost', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, repairAfterSec: 1, healthIntervalMs: 100 } });
  });
  afterAll(() => cluster?.close());

  it('copies every fragment of a datanode DOWN past repair-after back to 2 verified copies on live datanodes', async () => {
    const stored = await storeImages(cluster, 5, 100);
    const lost = 2;
    const onLost = (await Promise.all([...stored.keys()].map((name) => fragmentsOf(cluster, name)))).flatMap((fs) =>
      fs.filter((f) => f.holders.includes(lost)),
    );
    expect(onLost.length).toBeGreaterThan(0);
    const placedBefore = new Map(
      (await Promise.all([...stored.keys()].map((name) => fragmentsOf(cluster, name)))).flatMap((fs) =>
        fs.map((f) => [f.id, [...f.holders].sort()] as const),
      ),
    );
    const events = watchEvents(cluster.app);

    await stopDatanode(cluster, lost);
    await waitForStatus(cluster, lost, 'DOWN');
    expect(await underReplicated(cluster)).toBe(onLost.length);
    // Before repair-after has passed, nothing moves: a short outage costs no copying.
    expect((await fragmentsOf(cluster, [...stored.keys()][0])).flatMap((f) => f.holders).length).toBe(2 * 5);

    await until(async () => (await underReplicated(cluster)) === 0, 'underReplicatedFragments 0', 20_000);
    // Two verified copies on the live datanodes; the lost one's replica stays recorded (it may return with it).
    await expectCopies(cluster, stored, [0, 1], 2, [lost]);
    await expectDownloads(cluster, stored);
    const copied = events.received.filter((e) => e.kind === 'ReplicaRepaired' && e.reason === 're-replication');
    expect(new Set(copied.map((e) => (e as { fragmentId: string }).fragmentId))).toEqual(new Set(onLost.map((f) => f.id)));
    events.close();

    // Back again with its data: every fragment has one copy too many. Placement (equal free disk
    // here) ranks the returned datanode where it ranked it at upload, so its copies stay and the
    // ones repair made go: every fragment ends where it was placed, nothing drops below 2.
    const filesBefore = (await fragmentFileList(cluster)).filter((f) => f.node === lost);
    expect(filesBefore.length).toBe(onLost.length);
    await restartDatanode(cluster, lost);
    await waitForStatus(cluster, lost, 'UP');
    await until(
      async () =>
        (await Promise.all([...stored.keys()].map((name) => fragmentsOf(cluster, name)))).every((fs) =>
          fs.every((f) => f.holders.length === 2),
        ),
      'excess replicas trimmed',
      15_000,
    );
    await settleDeletions(cluster, 10_000);
    expect(await underReplicated(cluster)).toBe(0);
    await expectCopies(cluster, stored, [0, 1, 2]);
    for (const name of stored.keys())
      for (const f of await fragmentsOf(cluster, name)) expect([...f.holders].sort(), `${name}#${f.idx}`).toEqual(placedBefore.get(f.id));
    expect(
      (await fragmentFileList(cluster))
        .filter((f) => f.node === lost)
        .map((f) => f.id)
        .sort(),
    ).toEqual(filesBefore.map((f) => f.id).sort());
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });

    // It takes new replicas again.
    const fresh = await storeImages(cluster, 3, 200);
    expect(
      (await Promise.all([...fresh.keys()].map((n) => fragmentsOf(cluster, n)))).flatMap((fs) => fs.flatMap((f) => f.holders)),
    ).toContain(lost);
    await expectDownloads(cluster, new Map([...stored, ...fresh]));
  });

  it('keeps the lost replicas when there is nowhere to copy them, and re-replicates once a datanode is back', async () => {
    // Two of three down: one live datanode cannot hold a second copy.
    await settleDeletions(cluster, 10_000);
    const stored = await storeImages(cluster, 2, 300);
    await stopDatanode(cluster, 1);
    await stopDatanode(cluster, 2);
    await waitForStatus(cluster, 1, 'DOWN');
    await waitForStatus(cluster, 2, 'DOWN');
    // Both are lost once DOWN past repair-after (1 s); a repair pass begun after that copies nothing.
    const downSince = Math.max(...[1, 2].map((n) => cluster.app.registry.get(datanodeIds(cluster)[n])!.statusSince));
    await expect.poll(() => Date.now() - downSince, { timeout: 10_000 }).toBeGreaterThan(1000);
    await cluster.app.repairer.kick();
    for (const name of stored.keys()) for (const f of await fragmentsOf(cluster, name)) expect(f.holders.length).toBe(2);

    await restartDatanode(cluster, 1);
    await waitForStatus(cluster, 1, 'UP');
    await until(async () => (await underReplicated(cluster)) === 0, 'underReplicatedFragments 0', 45_000);
    await expectCopies(cluster, stored, [0, 1], 2, [2]);
    await restartDatanode(cluster, 2);
    await waitForStatus(cluster, 2, 'UP');
    await until(
      async () =>
        (await Promise.all([...stored.keys()].map((name) => fragmentsOf(cluster, name)))).every((fs) =>
          fs.every((f) => f.holders.length === 2),
        ),
      'excess replicas trimmed',
      15_000,
    );
    await settleDeletions(cluster, 10_000);
    await expectCopies(cluster, stored, [0, 1, 2]);
    await until(async () => (await auditDisks(cluster)).orphans.length === 0, 'no orphan file', 10_000);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
    await expectDownloads(cluster, stored);
  });
});

describe('re-replication after a coordinator restart', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, repairAfterSec: 3600, healthIntervalMs: 100 } });
  });
  afterAll(() => cluster?.close());

  it('does not copy off a datanode that was DOWN long before the restart and answers right after it', async () => {
    const stored = await storeImages(cluster, 4, 600);
    const back = 1;
    const id = datanodeIds(cluster)[back];
    const held = await cluster.app.catalog.replicaCountOn(id);
    await stopDatanode(cluster, back);
    await waitForStatus(cluster, back, 'DOWN');
    // DOWN for an hour, as the index will say after the restart.
    await cluster.app.indexSql('UPDATE datanodes SET status_since = status_since - 3600000 WHERE id = ?', id);

    await cluster.restartCoordinator({ repairAfterSec: 1 });
    const events = watchEvents(cluster.app);
    await restartDatanode(cluster, back);
    await waitForStatus(cluster, back, 'UP');
    // Every repair pass since the restart (the first one saw it DOWN "for an hour") has ended.
    await cluster.app.repairer.kick();
    events.close();
    expect(events.received.filter((e) => e.kind === 'ReplicaRepaired')).toEqual([]);
    expect(await cluster.app.catalog.replicaCountOn(id)).toBe(held);
    await expectCopies(cluster, stored, [0, 1, 2]);
  });
});

describe('decommission', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, healthIntervalMs: 100 } });
  });
  afterAll(() => cluster?.close());

  const DRAIN = `mutation($id: ID!) { drainDatanode(id: $id) { id draining } }`;
  const REMOVE = `mutation($id: ID!) { removeDatanode(id: $id) }`;

  it('drains a datanode (its fragments move elsewhere), then removes it; removal before that answers DATANODE_NOT_DRAINED', async () => {
    const stored = await storeImages(cluster, 5, 400);
    const leaving = 0;
    const id = datanodeIds(cluster)[leaving];
    expect(codeOf(await cluster.gql.request(REMOVE, { id }, auth))).toBe('DATANODE_NOT_DRAINED');
    expect(codeOf(await cluster.gql.request(DRAIN, { id }, { authorization: '' }))).toBe('UNAUTHENTICATED'); // no credential at all

    expect((await cluster.gql(DRAIN, { id }, auth)).drainDatanode).toEqual({ id, draining: true });
    // While it drains, new images go elsewhere.
    const during = await storeImages(cluster, 2, 500);
    for (const name of during.keys()) for (const f of await fragmentsOf(cluster, name)) expect(f.holders).not.toContain(leaving);

    await until(async () => (await cluster.app.catalog.replicaCountOn(id)) === 0, 'the draining datanode holds no replica', 20_000);
    await settleDeletions(cluster, 10_000);
    expect((await fragmentFileList(cluster)).filter((f) => f.node === leaving)).toEqual([]);
    const all = new Map([...stored, ...during]);
    await expectCopies(cluster, all, [1, 2]);

    expect(await cluster.gql(REMOVE, { id }, auth)).toEqual({ removeDatanode: true });
    const listed = (await cluster.gql('{ datanodes { id } cluster { datanodeCount underReplicatedFragments } }')) as any;
    expect(listed.datanodes.map((d: { id: string }) => d.id)).not.toContain(id);
    expect(listed.cluster).toEqual({ datanodeCount: 2, underReplicatedFragments: 0 });
    expect(codeOf(await cluster.gql.request(REMOVE, { id }, auth))).toBe('DATANODE_NOT_FOUND');
    await expectDownloads(cluster, all);
  });
});
