// deleteImage answers once the deletion is durable in the index, without waiting for a datanode
// (so sequential deletes are fast): the tombstone follows in the background. Until it lands a
// re-check of the index does not bring the image back, and once it lands the datanodes' records
// hold it, so a rebuild from them agrees.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { uploadImage } from './support/images.ts';
import { makePng } from './support/png.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 3, config: { replicationFactor: 2 } });
});
afterAll(() => cluster?.close());

const IMAGE = 'query($n: String!) { image(name: $n) { name } }';

it('answers before any datanode took the tombstone, and the tombstone follows', async () => {
  await uploadImage(cluster, 'later.png', makePng(300));
  const { client } = cluster.app;
  const { putRecord, deleteFragment, deleteBatch } = client;
  // Every datanode request of the deletion waits until released.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let held = 0;
  client.putRecord = async (...args) => {
    held += 1;
    await released;
    return putRecord(...args);
  };
  client.deleteFragment = async (...args) => {
    held += 1;
    await released;
    return deleteFragment(...args);
  };
  // Tombstones and file deletions go in batches (POST /deletions).
  client.deleteBatch = async (...args) => {
    held += 1;
    await released;
    return deleteBatch(...args);
  };
  try {
    const imageKey = (await cluster.app.catalog.imageByName('later.png'))!.imageKey;
    expect(await cluster.gql.ok('mutation($n: String!) { deleteImage(name: $n) }', { n: 'later.png' })).toEqual({ deleteImage: true });
    await expect.poll(() => held).toBeGreaterThan(0);
    expect((await cluster.app.records.readAll()).tombstoned.has(imageKey)).toBe(false);
    // A re-check while the tombstone is on its way reads a live manifest: the image stays deleted.
    await cluster.app.indexRebuild.run('test: a re-check before the tombstone landed');
    expect((await cluster.gql.ok<{ image: unknown }>(IMAGE, { n: 'later.png' })).image).toBeNull();
    release();
    await expect.poll(async () => (await cluster.app.records.readAll()).tombstoned.has(imageKey), { timeout: 10_000 }).toBe(true);
  } finally {
    release();
    client.putRecord = putRecord;
    client.deleteFragment = deleteFragment;
    client.deleteBatch = deleteBatch;
  }
  await cluster.app.indexRebuild.run('test: a re-check after');
  expect((await cluster.gql.ok<{ image: unknown }>(IMAGE, { n: 'later.png' })).image).toBeNull();
});
