// Every fragment of every stored image is on disk exactly R = 2 times, on 2 different datanodes,
// exactly where Image.fragments.replicas says, and nothing else is on disk.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { datanodeIds, fragmentFileList, fragmentFilesBySha256, settleDeletions } from './support/disk.ts';
import { bytesOf, IMAGE, sha256, sliceOf, uploadChunked, uploadImage, type ImageView } from './support/images.ts';

const FRAGMENT = 8 * 1024;
let cluster: TestCluster;
const images: { image: ImageView; bytes: Buffer }[] = [];

beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
  const a = bytesOf(9 * FRAGMENT + 3, 1);
  const b = bytesOf(6 * FRAGMENT, 2);
  const c = bytesOf(12 * FRAGMENT + 700, 3);
  images.push({
    image: await uploadChunked(cluster, 'base64.png', a, { order: [...Array(10).keys()].reverse(), concurrency: 4 }),
    bytes: a,
  });
  images.push({ image: await uploadChunked(cluster, 'multipart ✓.png', b, { multipart: true, concurrency: 2 }), bytes: b });
  images.push({ image: await uploadImage(cluster, 'one-shot.png', c, 'image/png'), bytes: c });
  await settleDeletions(cluster);
});
afterAll(() => cluster?.close());

it('stores each fragment exactly twice, on two different datanodes, as the index says', async () => {
  const ids = datanodeIds(cluster);
  const bySha = await fragmentFilesBySha256(cluster);
  let fragments = 0;
  for (const { image, bytes } of images) {
    const stored = (await cluster.gql(IMAGE, { n: image.name })).image as ImageView;
    expect(stored.fragments).toHaveLength(Math.ceil(bytes.length / FRAGMENT));
    for (const f of stored.fragments) {
      fragments += 1;
      const expected = sliceOf(bytes, FRAGMENT, f.index);
      const files = bySha.get(sha256(expected)) ?? [];
      expect(files, `${image.name} #${f.index}`).toHaveLength(2);
      // Two files of the same fragment id, each exactly the fragment's bytes, on two datanodes.
      expect(new Set(files.map((x) => x.id)).size).toBe(1);
      expect(new Set(files.map((x) => x.node)).size).toBe(2);
      for (const file of files) expect(file.size).toBe(expected.length);
      // The replicas the API reports are those datanodes.
      const onDisk = files.map((x) => ids[x.node]).sort();
      expect(f.replicas.map((r) => r.id).sort()).toEqual(onDisk);
      expect(new Set(f.replicas.map((r) => r.url)).size).toBe(2);
    }
  }
  // Nothing else: no orphan, no third copy, no leftover from the upload.
  expect((await fragmentFileList(cluster)).length).toBe(2 * fragments);
});

it('spreads the replicas over all three datanodes', async () => {
  const perNode = [0, 0, 0];
  for (const f of await fragmentFileList(cluster)) perNode[f.node] += 1;
  for (const n of perNode) expect(n).toBeGreaterThan(0);
});

it('reports no under-replicated fragment', async () => {
  const { cluster: status } = await cluster.gql('{ cluster { replicationFactor underReplicatedFragments } }');
  expect(status).toEqual({ replicationFactor: 2, underReplicatedFragments: 0 });
});
