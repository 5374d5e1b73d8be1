// A network partition rather than a crash: a datanode in its own network namespace loses its
// link (packets vanish; nothing refuses the connection). Reads fail over without waiting for
// the long request timeout, uploads go on, the fragments are re-replicated once it has been
// DOWN past repair-after, and when the link heals the excess replicas are trimmed to R (the
// healed datanode keeps the copies placement prefers it for).
// Skips itself where network namespaces are unavailable (not root, not Linux, no ip netns).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import { auditDisks } from './support/faults.ts';
import { netnsUnavailable, startPartitionableDatanode, type PartitionedDatanode } from './support/netns.ts';
import { bytesOf, download, sha256, uploadImage } from './support/images.ts';

const unavailable = netnsUnavailable();
// CI runs as root, where this runs; elsewhere say loudly that it did not.
if (unavailable) console.warn(`network-partition.test.ts skipped: ${unavailable}`);
const FRAGMENT = 32 * 1024;

describe.skipIf(unavailable !== undefined)(`network partition${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cluster: TestCluster;
  let partitioned: PartitionedDatanode;
  let dir: string;
  let id: string;
  const stored = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-netns-'));
    partitioned = await startPartitionableDatanode({ dataDir: join(dir, 'partitioned'), secret: TEST_SECRET });
    // The namespaced datanode measures the real machine: a busy CI box must not make it DEGRADED
    // (thresholds above 100 % are never reached).
    const thresholds = { cpuPercent: 101, memoryPercent: 101, diskPercent: 101 };
    // Reconciliation only when the test kicks it, and then with no grace (see the end of the test).
    cluster = await startCluster({
      datanodes: 2,
      config: {
        fragmentSize: FRAGMENT,
        healthIntervalMs: 200,
        repairAfterSec: 2,
        thresholds,
        reconcileIntervalSec: 3600,
        orphanGraceSec: 0,
      },
    });
    id = (await cluster.app.cluster.register(partitioned.url)).id;
    await until(
      () => cluster.app.registry.get(id)?.status === 'UP',
      `the namespaced datanode UP (is ${cluster.app.registry.get(id)?.status})`,
    );
    for (let i = 0; i < 6; i++) {
      const bytes = bytesOf(5 * FRAGMENT + i, 70 + i);
      await uploadImage(cluster, `p-${i}.png`, bytes);
      stored.set(`p-${i}.png`, bytes);
    }
    expect(await cluster.app.catalog.replicaCountOn(id)).toBeGreaterThan(0);
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
    await partitioned?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const underReplicated = async () =>
    (await cluster.gql('{ cluster { underReplicatedFragments } }')).cluster.underReplicatedFragments as number;
  /** Fragment files of the namespaced datanode, as its own inventory lists them. */
  const partitionedFiles = async () =>
    (await (await fetch(`${partitioned.url}/fragments`, { headers: { authorization: `Bearer ${TEST_SECRET}` } })).json()) as {
      id: string;
    }[];

  it('serves every image while the link is cut, re-replicates after repair-after, and trims the excess copies when the link heals', async () => {
    const onPartitioned = await cluster.app.catalog.replicaCountOn(id);
    partitioned.cut();

    // Right after the cut the datanode still counts as UP: reads that try it must move on quickly.
    const started = Date.now();
    for (const [name, bytes] of stored) {
      const { res, body } = await download(cluster, name);
      expect(res.status).toBe(200);
      expect(sha256(body)).toBe(sha256(bytes));
    }
    expect(Date.now() - started).toBeLessThan(15_000);
    // Whether a download asked the cut datanode first depends on the datanode ids; ask it first
    // on purpose: the next replica is asked after the hedge delay, long before the request deadline.
    let name = '';
    for (const n of stored.keys()) {
      const replicas = await cluster.app.catalog.fragmentsWithReplicas((await cluster.app.catalog.imageByName(n))!.id);
      if (replicas.some((f) => f.replicas.includes(id))) {
        name = n;
        break;
      }
    }
    const fragment = (await cluster.app.catalog.fragmentsWithReplicas((await cluster.app.catalog.imageByName(name))!.id)).find((f) =>
      f.replicas.includes(id),
    )!;
    const t0 = Date.now();
    const data = await cluster.app.replicas.read({ ...fragment, replicas: [id, ...fragment.replicas.filter((r) => r !== id)] });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(data.equals(stored.get(name)!.subarray(fragment.idx * FRAGMENT, (fragment.idx + 1) * FRAGMENT))).toBe(true);

    // Uploads go on (the cut datanode is left out once it is DOWN, or falls back before).
    const during = bytesOf(4 * FRAGMENT, 99);
    await uploadImage(cluster, 'during.png', during);
    stored.set('during.png', during);

    await until(() => cluster.app.registry.get(id)?.status === 'DOWN', 'the cut datanode DOWN', 15_000);
    await until(async () => (await underReplicated()) === 0, 'underReplicatedFragments 0', 30_000);
    // Its replicas stay recorded while it is away: it may come back with them.
    expect(await cluster.app.catalog.replicaCountOn(id)).toBe(onPartitioned);

    partitioned.heal();
    await until(() => cluster.app.registry.get(id)?.status === 'UP', 'the healed datanode UP', 15_000);
    // Its replicas were re-replicated elsewhere: every fragment is trimmed back to 2 copies, and
    // the healed datanode holds exactly the files the index still gives it.
    const replicaCounts = () => cluster.app.indexSql('SELECT count(*) AS n FROM replicas GROUP BY fragment_id');
    await until(async () => (await replicaCounts()).every((r) => Number(r.n) === 2), 'the excess copies trimmed', 20_000);
    await settleDeletions(cluster, 20_000);
    // A write that was on the wire at the cut can land once the link heals, after the coordinator
    // gave up on it: a file nothing references, which reconciliation exists to remove. One pass.
    await cluster.app.reconciler.kick();
    await settleDeletions(cluster, 20_000);
    expect((await partitionedFiles()).map((f) => f.id).sort()).toEqual([...(await cluster.app.catalog.replicaIdsOn(id))].sort());
    expect(onPartitioned).toBeGreaterThan(0);
    expect(await underReplicated()).toBe(0);
    // The audit reads the other datanodes' dirs (cluster.nodes); the namespaced one was checked above.
    const audit = await auditDisks(cluster);
    expect({ orphans: audit.orphans, bad: audit.bad.filter((b) => !b.startsWith('-1:')) }).toEqual({ orphans: [], bad: [] });
    for (const [name, bytes] of stored) {
      const { body } = await download(cluster, name);
      expect(sha256(body)).toBe(sha256(bytes));
    }
  }, 120_000);
});
