// Two real datanode processes restarted on each other's ports: the coordinator notices (every
// health answer proves a node id), marks both in `datanodes`, serves nothing from the wrong node
// and deletes nothing; back on their own ports they are trusted again and serve the image.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatanodeClient, DatanodeHttpError } from '../src/cluster/datanode-client.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { until } from './support/poll.ts';
import { bytesOf, download, uploadImage } from './support/images.ts';

const SECRET = 'replica-identity-secret';
const FRAGMENT = 64 * 1024;

let dir: string;
let base: number;
const nodes: DatanodeProcess[] = [];
let coordinator: Awaited<ReturnType<typeof startCoordinatorOver>>;

const dataDir = (i: number) => join(dir, `datanode-${i}`);
const start = (i: number, port: number) =>
  startDatanodeProcess({ dataDir: dataDir(i), secret: SECRET, port, extraArgs: ['--health-interval-ms', '200'] });

/** Fragment file name → SHA-256 of its bytes, on datanode i. */
async function filesOf(i: number): Promise<Record<string, string>> {
  const names = (await readdir(join(dataDir(i), 'fragments'))).sort();
  const out: Record<string, string> = {};
  for (const n of names)
    out[n] = createHash('sha256')
      .update(await readFile(join(dataDir(i), 'fragments', n)))
      .digest('hex');
  return out;
}

const DATANODES = `{ datanodes { id url status identityFault } }`;
type Row = { id: string; url: string; status: string; identityFault: string | null };
const rows = async (): Promise<Row[]> => (await coordinator.gql(DATANODES)).datanodes;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-swap-'));
  base = await freePortBlock(2);
  nodes.push(await start(0, base), await start(1, base + 1));
  coordinator = await startCoordinatorOver(
    nodes.map((n) => n.url),
    // Reconciliation and orphan deletion as eager as they go; repair far away.
    {
      secret: SECRET,
      replicationFactor: 2,
      fragmentSize: FRAGMENT,
      reconcileIntervalSec: 1,
      orphanGraceSec: 1,
      repairAfterSec: 3600,
      scrubBytesPerSec: 0,
    },
  );
}, 60_000);

afterAll(async () => {
  await coordinator?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('replica identity', () => {
  it("two datanodes restarted on each other's ports: marked WRONG_NODE, nothing served or deleted through them, trusted again once back", async () => {
    const cluster = asCluster(coordinator);
    const png = bytesOf(5 * FRAGMENT + 123, 7);
    await uploadImage(cluster, 'swap/a.png', png, 'image/png');
    const before = [await filesOf(0), await filesOf(1)];
    expect(Object.keys(before[0])).toHaveLength(6); // R = 2 on 2 datanodes: every fragment on both
    const original = await rows();
    // Live (UP, or DEGRADED on a busy test machine) and trusted.
    expect(original.map((r) => [r.status !== 'DOWN', r.identityFault])).toEqual([
      [true, null],
      [true, null],
    ]);

    // Swap: datanode 0's disks now answer at datanode 1's URL and the other way round.
    await Promise.all(nodes.splice(0, 2).map((n) => n.stop()));
    nodes.push(await start(0, base + 1), await start(1, base));

    await until(
      async () => (await rows()).every((r) => r.status === 'DOWN' && /^WRONG_NODE/.test(r.identityFault ?? '')),
      'both datanodes marked WRONG_NODE',
      20_000,
    );
    const marked = await rows();
    expect(marked.map((r) => r.id)).toEqual(original.map((r) => r.id)); // no entry moved or was created
    expect(marked[0].identityFault).toContain(original[1].id);
    expect(marked[1].identityFault).toContain(original[0].id);

    // Nothing is served from the wrong node: each refuses a request that names the other's id.
    const { res } = await download(cluster, 'swap/a.png');
    expect(res.status).not.toBe(200);
    const registry = coordinator.app.registry;
    const expectedIds = original.map((r) => registry.get(r.id)!.nodeId!);
    const probe = createDatanodeClient({
      secret: SECRET,
      identity: {
        clusterId: () => coordinator.app.clusterIdentity.current(),
        expectedNodeId: (url) => (url === original[0].url ? expectedIds[0] : expectedIds[1]),
      },
    });
    try {
      const fragmentId = Object.keys(before[0])[0];
      const refused = await probe.deleteFragment(original[0].url, fragmentId).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(DatanodeHttpError);
      expect((refused as DatanodeHttpError).code).toBe('WRONG_NODE');
      const refusedRead = await probe.getFragment(original[1].url, fragmentId).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((refusedRead as DatanodeHttpError).code).toBe('WRONG_NODE');
    } finally {
      probe.close();
    }

    // Reconciliation rounds on both sides of the 1 s orphan grace: not one file deleted or rewritten.
    await coordinator.app.reconciler.kick();
    const firstRound = Date.now();
    await expect.poll(() => Date.now() - firstRound, { timeout: 5000 }).toBeGreaterThan(1000);
    await coordinator.app.reconciler.kick();
    await coordinator.app.deleter.idle();
    expect([await filesOf(0), await filesOf(1)]).toEqual(before);

    // Back on their own ports: proven again, UP, and the image downloads byte-identical.
    await Promise.all(nodes.splice(0, 2).map((n) => n.stop()));
    nodes.push(await start(0, base), await start(1, base + 1));
    await until(
      async () => (await rows()).every((r) => r.status !== 'DOWN' && r.identityFault === null),
      'both datanodes trusted again',
      20_000,
    );
    const again = await download(cluster, 'swap/a.png');
    expect(again.res.status).toBe(200);
    expect(again.body.equals(png)).toBe(true);
    expect([await filesOf(0), await filesOf(1)]).toEqual(before);
  }, 120_000);
});
