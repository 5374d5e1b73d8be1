// Issue 8, "never delete what cannot be accounted for": reconciliation keeps every file a live
// manifest on the datanodes references, whatever the index holds, and deletes at most
// --reconcile-max-deletions orphans per round.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import type { ImageManifest } from '../src/shared/datanode-api.ts';
import { startCluster, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { fragmentPath } from './support/faults.ts';
import { sha256 } from './support/images.ts';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function putFile(c: TestCluster, node: number, id: string, bytes: Buffer) {
  const res = await fetch(`${c.nodes[node].url}/fragments/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TEST_SECRET}`, 'x-content-sha256': sha256(bytes) },
    body: new Uint8Array(bytes),
  });
  expect(res.status).toBe(201);
}

it(
  'deletes at most the cap per round, and never a file a live manifest references (held on another datanode)',
  { timeout: 30_000 },
  async () => {
    cluster = await startCluster({ config: { reconcileIntervalSec: 3600, orphanGraceSec: 0, reconcileMaxDeletions: 2 } });
    const c = cluster;
    const orphans = Array.from({ length: 5 }, (_, i) => `orphan-${i}`);
    for (const id of orphans) await putFile(c, 0, id, randomBytes(100));

    // A stored image the index never heard of: its fragment on datanode 0, its manifest only on datanode 1.
    const bytes = randomBytes(300);
    const manifest: ImageManifest = {
      kind: 'manifest',
      image: 'unindexed-image',
      name: 'unindexed.bin',
      size: 300,
      contentType: 'application/octet-stream',
      sha256: sha256(bytes),
      createdAt: Date.now(),
      fragmentSize: 65536,
      fragments: [{ index: 0, size: 300, sha256: sha256(bytes), id: 'unindexed-fragment' }],
    };
    await putFile(c, 0, 'unindexed-fragment', bytes);
    const put = await fetch(`${c.nodes[1].url}/records/manifest/${manifest.image}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_SECRET}` },
      body: JSON.stringify(manifest),
    });
    expect(put.status).toBe(201);

    const remaining = () => orphans.filter((id) => existsSync(fragmentPath(c, 0, id))).length;
    await c.app.reconciler.kick();
    await c.app.deleter.idle();
    expect(remaining()).toBe(3);
    await c.app.reconciler.kick();
    await c.app.deleter.idle();
    expect(remaining()).toBe(1);
    await c.app.reconciler.kick();
    await c.app.deleter.idle();
    expect(remaining()).toBe(0);
    // Referenced by a live manifest on datanode 1: kept on datanode 0 through every round.
    expect(existsSync(fragmentPath(c, 0, 'unindexed-fragment'))).toBe(true);
  },
);
