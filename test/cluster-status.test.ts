// The `cluster` figures and the `datanodes` list: counts, live datanodes, stored images and
// bytes (one copy), no under-replicated fragment, and each datanode's last health sample.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { fragmentFileList, settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import { ABORT, beginUpload, bytesOf, DELETE, sendFragment, uploadChunked, uploadImage } from './support/images.ts';

const FRAGMENT = 4096;
const CLUSTER =
  '{ cluster { replicationFactor fragmentSize datanodeCount liveDatanodeCount imageCount storedBytes underReplicatedFragments } }';
const DATANODES = '{ datanodes { id url status lastSeenAt cpuPercent memoryPercent diskPercent diskFreeBytes fragmentCount storedBytes } }';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
});
afterAll(() => cluster?.close());

const figures = async () => (await cluster.gql(CLUSTER)).cluster;

it('starts empty with 3 live datanodes', async () => {
  expect(await figures()).toEqual({
    replicationFactor: 2,
    fragmentSize: FRAGMENT,
    datanodeCount: 3,
    liveDatanodeCount: 3,
    imageCount: 0,
    storedBytes: 0,
    underReplicatedFragments: 0,
  });
});

it('lists 3 datanodes, UP, with their last health sample', async () => {
  const { datanodes } = await cluster.gql(DATANODES);
  expect(datanodes).toHaveLength(3);
  expect(datanodes.map((n: { url: string }) => n.url).sort()).toEqual(cluster.nodes.map((n) => n.url).sort());
  expect(new Set(datanodes.map((n: { id: string }) => n.id)).size).toBe(3);
  for (const n of datanodes) {
    expect(n.status).toBe('UP');
    expect(Date.parse(n.lastSeenAt)).toBeGreaterThan(Date.now() - 60_000);
    // The test datanodes report fixed, calm machine figures.
    expect(n).toMatchObject({ cpuPercent: 5, memoryPercent: 30, diskPercent: 40, diskFreeBytes: 100e9 });
  }
});

it('counts stored images and their bytes (one copy), not open uploads', async () => {
  const a = bytesOf(3 * FRAGMENT + 5, 1);
  const b = bytesOf(700, 2);
  await uploadChunked(cluster, 'a.png', a, { order: [2, 3, 0, 1] });
  await uploadImage(cluster, 'b.png', b);
  const open = await beginUpload(cluster, { name: 'open.png', size: 2 * FRAGMENT });
  await sendFragment(cluster, open.id, 0, bytesOf(FRAGMENT, 3));

  expect(await figures()).toMatchObject({
    imageCount: 2,
    storedBytes: a.length + b.length,
    underReplicatedFragments: 0,
    liveDatanodeCount: 3,
  });

  // The datanodes' own counts (as of their next sample) add up to what is on disk: 2 copies of
  // every fragment, the open upload's included.
  await settleDeletions(cluster);
  const files = await fragmentFileList(cluster);
  expect(files).toHaveLength(2 * (4 + 1 + 1));
  await until(async () => {
    const { datanodes } = await cluster.gql(DATANODES);
    return datanodes.reduce((n: number, d: { fragmentCount: number }) => n + d.fragmentCount, 0) === files.length;
  }, 'the datanodes to report their fragments');
  const { datanodes } = await cluster.gql(DATANODES);
  expect(datanodes.reduce((n: number, d: { storedBytes: number }) => n + d.storedBytes, 0)).toBe(2 * (a.length + b.length + FRAGMENT));

  await cluster.gql(ABORT, { u: open.id });
  expect(await cluster.gql(DELETE, { n: 'a.png' })).toEqual({ deleteImage: true });
  expect(await figures()).toMatchObject({ imageCount: 1, storedBytes: b.length, underReplicatedFragments: 0 });
});
