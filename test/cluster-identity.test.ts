// A datanode belongs to one cluster (its id kept in <data-dir>/cluster-id from the first
// coordinator that signed a request to it): a coordinator of another cluster, or one without a
// cluster id (it lost its index), cannot make it write or delete; a coordinator that lost its
// index regains the id from its datanodes. Real datanode processes throughout.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_ID_FILE } from '../datanode/cluster-id.ts';
import { createDatanodeClient, type DatanodeHttpError } from '../src/cluster/datanode-client.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { until } from './support/poll.ts';
import { bytesOf, uploadImage } from './support/images.ts';

const SECRET = 'cluster-identity-secret';
const FRAGMENT = 32 * 1024;
const REGISTER = `mutation($url: String!) { registerDatanode(url: $url) { id } }`;

let dir: string;
let port: number;
let nodeA: DatanodeProcess;
let nodeB: DatanodeProcess;
const coordinators: Awaited<ReturnType<typeof startCoordinatorOver>>[] = [];
const startA = () => startDatanodeProcess({ dataDir: join(dir, 'a'), secret: SECRET, port });

async function filesOf(dataDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of (await readdir(join(dataDir, 'fragments'))).sort())
    out[n] = createHash('sha256')
      .update(await readFile(join(dataDir, 'fragments', n)))
      .digest('hex');
  return out;
}
const clusterIdOnDisk = async (dataDir: string) => (await readFile(join(dataDir, CLUSTER_ID_FILE), 'utf8').catch(() => '')).trim();
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err as DatanodeHttpError,
  );

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-cluster-id-'));
  port = await freePortBlock(1);
  nodeA = await startA();
  nodeB = await startDatanodeProcess({ dataDir: join(dir, 'b'), secret: SECRET });
}, 60_000);

afterAll(async () => {
  for (const c of coordinators) await c.close().catch(() => undefined);
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

describe('cluster identity', () => {
  let clusterA: string;
  let before: Record<string, string>;

  it('a new cluster mints its id and its datanode keeps it in its data dir', async () => {
    const a = await startCoordinatorOver([nodeA.url], {
      secret: SECRET,
      replicationFactor: 1,
      fragmentSize: FRAGMENT,
      orphanGraceSec: 3600,
    });
    coordinators.push(a);
    clusterA = a.app.clusterIdentity.current()!;
    expect(clusterA).toMatch(/^[0-9a-f-]{36}$/);
    await until(async () => (await clusterIdOnDisk(join(dir, 'a'))) === clusterA, 'datanode A joined cluster A', 10_000);
    await uploadImage(asCluster(a), 'id/one.png', bytesOf(3 * FRAGMENT, 3), 'image/png');
    before = await filesOf(join(dir, 'a'));
    expect(Object.keys(before)).toHaveLength(3);
  }, 30_000);

  it('a coordinator without a cluster id (index lost) can read but neither write nor delete', async () => {
    const fragmentId = Object.keys(before)[0];
    const lost = createDatanodeClient({ secret: SECRET, identity: { clusterId: () => undefined, expectedNodeId: () => undefined } });
    try {
      expect((await failure(lost.deleteFragment(nodeA.url, fragmentId)))?.code).toBe('CLUSTER_ID_REQUIRED');
      const bytes = Buffer.from('overwrite');
      expect((await failure(lost.putFragment(nodeA.url, fragmentId, bytes, createHash('sha256').update(bytes).digest('hex'))))?.code).toBe(
        'CLUSTER_ID_REQUIRED',
      );
      // Reads stay open to it: a rebuild of the index reads the datanodes before it knows the id.
      expect(
        createHash('sha256')
          .update((await lost.getFragment(nodeA.url, fragmentId))!)
          .digest('hex'),
      ).toBe(before[fragmentId]);
    } finally {
      lost.close();
    }
    expect(await filesOf(join(dir, 'a'))).toEqual(before);
  });

  it('a coordinator of another cluster is refused, marks the datanode WRONG_CLUSTER and deletes nothing', async () => {
    const b = await startCoordinatorOver([nodeB.url], {
      secret: SECRET,
      replicationFactor: 1,
      fragmentSize: FRAGMENT,
      reconcileIntervalSec: 1,
      orphanGraceSec: 1,
    });
    coordinators.push(b);
    const clusterB = b.app.clusterIdentity.current()!;
    expect(clusterB).toBeDefined();
    expect(clusterB).not.toBe(clusterA);

    // Cluster B is told about A's datanode (a wrong --datanode, a mistyped registerDatanode).
    const { id } = (await b.gql(REGISTER, { url: nodeA.url }, { authorization: `Bearer ${SECRET}` })).registerDatanode;
    await until(() => /^WRONG_CLUSTER/.test(b.app.registry.get(id)?.identityFault ?? ''), 'A marked WRONG_CLUSTER in cluster B', 10_000);
    const { datanodes } = await b.gql(`{ datanodes { id status identityFault } }`);
    expect(datanodes.find((d: { id: string }) => d.id === id)).toMatchObject({
      status: 'DOWN',
      identityFault: expect.stringContaining(clusterA),
    });

    const foreign = createDatanodeClient({ secret: SECRET, identity: { clusterId: () => clusterB, expectedNodeId: () => undefined } });
    try {
      expect((await failure(foreign.deleteFragment(nodeA.url, Object.keys(before)[0])))?.code).toBe('WRONG_CLUSTER');
      expect((await failure(foreign.listFragments(nodeA.url)))?.code).toBe('WRONG_CLUSTER');
    } finally {
      foreign.close();
    }
    // Rounds of B's reconciliation on both sides of its 1 s orphan grace delete nothing on A.
    await b.app.reconciler.kick();
    const firstRound = Date.now();
    await expect.poll(() => Date.now() - firstRound, { timeout: 5000 }).toBeGreaterThan(1000);
    await b.app.reconciler.kick();
    await b.app.deleter.idle();
    expect(await filesOf(join(dir, 'a'))).toEqual(before);
    expect(await clusterIdOnDisk(join(dir, 'a'))).toBe(clusterA);
    await b.close();
    coordinators.pop();
  }, 60_000);

  it('a coordinator whose index folder was removed regains the cluster id from its datanodes, once one answers', async () => {
    const a = coordinators.pop()!;
    await a.stop();
    await rm(join(a.dir, 'coordinator'), { recursive: true, force: true });
    await nodeA.stop();

    // No datanode answers: no id is invented for the old disks; writes and deletes wait.
    const fresh = await startCoordinatorOver([nodeA.url], {
      secret: SECRET,
      replicationFactor: 1,
      fragmentSize: FRAGMENT,
      orphanGraceSec: 3600,
    });
    coordinators.push(fresh);
    await rm(a.dir, { recursive: true, force: true });
    expect(fresh.app.clusterIdentity.current()).toBeUndefined();

    nodeA = await startA();
    await until(() => fresh.app.clusterIdentity.current() !== undefined, 'cluster id regained', 15_000);
    expect(fresh.app.clusterIdentity.current()).toBe(clusterA);
    // It is in the new index, so a restart keeps it without asking.
    await fresh.restart({ datanodes: [] });
    expect(fresh.app.clusterIdentity.current()).toBe(clusterA);
    expect(await filesOf(join(dir, 'a'))).toEqual(before);
  }, 60_000);
});

describe('cluster identity with --insecure', () => {
  it("an unguarded datanode joins its coordinator's cluster and takes its writes and deletes", async () => {
    const dataDir = join(dir, 'insecure');
    const node = await startDatanodeProcess({ dataDir, extraArgs: ['--insecure'] });
    const c = await startCoordinatorOver([node.url], { secret: undefined, replicationFactor: 1, fragmentSize: FRAGMENT });
    try {
      const clusterId = c.app.clusterIdentity.current();
      expect(clusterId).toBeDefined();
      await uploadImage(asCluster(c), 'insecure.png', bytesOf(2 * FRAGMENT, 4), 'image/png');
      expect(await clusterIdOnDisk(dataDir)).toBe(clusterId);
      expect(Object.keys(await filesOf(dataDir))).toHaveLength(2);
      await c.gql(`mutation { deleteImage(name: "insecure.png") }`);
      await until(async () => (await readdir(join(dataDir, 'fragments'))).length === 0, 'its files deleted', 15_000);
    } finally {
      await c.close();
      await node.stop();
    }
  }, 60_000);
});
