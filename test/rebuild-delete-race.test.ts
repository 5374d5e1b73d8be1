// A re-check of the index whose reading of the datanodes' records came before a deleteImage
// must not bring the deleted image back (bench/soak.ts saw deleted images return).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { uploadImage } from './support/images.ts';
import { makePng } from './support/png.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2, config: { replicationFactor: 2 } });
});
afterAll(() => cluster?.close());

it('an image deleted after a rebuild pass read the records stays deleted', async () => {
  await uploadImage(cluster, 'race.png', makePng(200));
  const records = cluster.app.records;
  const readAll = records.readAll;
  // The real pass, with the delete landing between its reading and its applying.
  records.readAll = async () => {
    const stale = await readAll();
    expect(stale.live.size).toBe(1);
    await cluster.gql.ok('mutation($n: String!) { deleteImage(name: $n) }', { n: 'race.png' });
    return stale;
  };
  try {
    await cluster.app.indexRebuild.run('test: a re-check racing a delete');
  } finally {
    records.readAll = readAll;
  }
  const after = await cluster.gql.ok<{ image: unknown }>('query($n: String!) { image(name: $n) { name } }', { n: 'race.png' });
  expect(after.image).toBeNull();
  // And a later pass, reading the tombstones, agrees.
  await cluster.app.indexRebuild.run('test: a later re-check');
  expect((await cluster.gql.ok<{ image: unknown }>('query($n: String!) { image(name: $n) { name } }', { n: 'race.png' })).image).toBeNull();
});
