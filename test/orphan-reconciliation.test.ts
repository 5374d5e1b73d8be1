// Reconciliation of each datanode's inventory with the index: a fragment file nobody references
// is deleted once the grace period has passed (never before), files of open uploads are kept,
// and a replica the index expects but the datanode lacks is rewritten from a good copy.
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { until } from './support/poll.ts';
import { auditDisks, fragmentPath, fragmentsOf, removeReplicaFile, sleep, watchEvents } from './support/faults.ts';
import { beginUpload, bytesOf, download, sendFragment, sha256, sliceOf, UPLOAD, uploadImage } from './support/images.ts';

const FRAGMENT = 16 * 1024;
const GRACE_SEC = 3;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, reconcileIntervalSec: 1, orphanGraceSec: GRACE_SEC } });
});
afterAll(() => cluster?.close());

/** A fragment file written straight to a datanode, as a crashed writer would leave it. */
async function putOrphan(node: number, id: string, bytes: Buffer) {
  const res = await fetch(`${cluster.nodes[node].url}/fragments/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TEST_SECRET}`, 'x-content-sha256': sha256(bytes), 'content-type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  expect(res.status).toBe(201);
}

describe('reconciliation', () => {
  it('deletes a fragment file nobody references after the grace period, and not before; open uploads keep theirs', async () => {
    const bytes = bytesOf(FRAGMENT, 1);
    const session = await beginUpload(cluster, { name: 'open.png', size: 2 * FRAGMENT });
    await sendFragment(cluster, session.id, 0, bytes);
    const openFiles = (await auditDisks(cluster)).files;

    const written = Date.now();
    await putOrphan(1, 'orphan-from-a-crash', bytesOf(5000, 2));
    const orphan = fragmentPath(cluster, 1, 'orphan-from-a-crash');
    // Until the grace period has passed since it was written, it stays (the reconciler runs every second).
    while (Date.now() - written < GRACE_SEC * 1000 - 300) {
      expect(existsSync(orphan)).toBe(true);
      await sleep(100);
    }
    await until(() => !existsSync(orphan), 'the orphan deleted', 5000);
    expect(Date.now() - written).toBeGreaterThanOrEqual(GRACE_SEC * 1000);

    // The open upload's fragment (older than the grace period by now) is no orphan.
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [], files: openFiles });
    expect((await cluster.gql(UPLOAD, { u: session.id })).upload.receivedFragments).toEqual([0]);
  });

  it('rewrites a replica the index expects but the datanode lacks', async () => {
    const bytes = bytesOf(3 * FRAGMENT, 3);
    await uploadImage(cluster, 'kept.png', bytes);
    const events = watchEvents(cluster.app);
    const victim = (await fragmentsOf(cluster, 'kept.png'))[2];
    const node = victim.holders[1];
    await removeReplicaFile(cluster, node, victim.id);

    const repaired = await events.waitFor(
      (e) => e.kind === 'ReplicaRepaired' && e.fragmentId === victim.id,
      'ReplicaRepaired of the missing replica',
      10_000,
    );
    expect(repaired).toMatchObject({ reason: 'missing' });
    events.close();
    expect((await readFile(fragmentPath(cluster, node, victim.id))).equals(sliceOf(bytes, FRAGMENT, 2))).toBe(true);
    expect((await download(cluster, 'kept.png')).body.equals(bytes)).toBe(true);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
  });
});

describe('a verified copy the index lost track of', () => {
  it('is adopted back as a replica of its under-replicated fragment, not deleted', async () => {
    const c = await startCluster({ datanodes: 3, config: { orphanGraceSec: 0, reconcileIntervalSec: 3600 } });
    try {
      const data = randomBytes(100_000);
      const form = await c.gql.multipart(
        `mutation($f: File!) { uploadImage(name: "adopt.bin", file: $f) { name } }`,
        { f: null },
        { 'variables.f': { data } },
      );
      const fragments = (await c.gql(`{ image(name: "adopt.bin") { fragments { index sha256 replicas { id } } } }`)).image.fragments;
      expect(form.errors).toBeUndefined();
      const [{ id: fragmentId }] = (await c.app.indexSql(
        'SELECT f.id FROM fragments f JOIN images i ON i.id = f.image_id WHERE i.name = ? AND f.idx = 0',
        'adopt.bin',
      )) as { id: string }[];
      const holder = fragments[0].replicas[0].id;
      await c.app.indexSql('DELETE FROM replicas WHERE fragment_id = ? AND datanode_id = ?', fragmentId, holder);
      expect(await c.app.catalog.replicasOf(fragmentId)).toHaveLength(1);

      await c.app.reconciler.reconcile(holder);
      expect((await c.app.catalog.replicasOf(fragmentId)).sort()).toEqual(fragments[0].replicas.map((r: { id: string }) => r.id).sort());
      const res = await fetch(`${c.url}/images/adopt.bin`);
      expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    } finally {
      await c.close();
    }
  });
});
