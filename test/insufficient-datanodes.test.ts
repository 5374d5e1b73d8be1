// INSUFFICIENT_DATANODES: with fewer live datanodes than the replication factor, beginUpload,
// uploadFragment and uploadImage fail and nothing is stored, listed or left on disk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startDatanode, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { fragmentFileList } from './support/disk.ts';
import { until } from './support/poll.ts';
import {
  BEGIN,
  beginUpload,
  bytesOf,
  completeUpload,
  listNames,
  sendFragment,
  sendFragmentRaw,
  sha256,
  sliceOf,
  stateOf,
  UPLOAD,
  uploadImageRaw,
} from './support/images.ts';

const FRAGMENT = 4096;

describe('a cluster of 1 datanode with replication factor 2', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 1, config: { fragmentSize: FRAGMENT, replicationFactor: 2 } });
  });
  afterAll(() => cluster?.close());

  it('refuses beginUpload and uploadImage, and stores nothing', async () => {
    const before = await stateOf(cluster);
    const begin = await cluster.gql.request(BEGIN, { i: { name: 'a.png', size: 100 } });
    expect(codeOf(begin)).toBe('INSUFFICIENT_DATANODES');
    expect(begin.data).toBeNull();
    const whole = await uploadImageRaw(cluster, 'b.png', bytesOf(3 * FRAGMENT));
    expect(codeOf(whole)).toBe('INSUFFICIENT_DATANODES');
    expect(await stateOf(cluster)).toEqual(before);
    expect(await listNames(cluster)).toEqual([]);
    expect(await fragmentFileList(cluster)).toEqual([]);
    const { cluster: figures } = await cluster.gql('{ cluster { datanodeCount liveDatanodeCount imageCount storedBytes } }');
    expect(figures).toEqual({ datanodeCount: 1, liveDatanodeCount: 1, imageCount: 0, storedBytes: 0 });
  });
});

describe('a datanode lost during an upload', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({
      datanodes: 2,
      config: { fragmentSize: FRAGMENT, replicationFactor: 2, healthIntervalMs: 50, downAfterFailures: 1 },
    });
  });
  afterAll(() => cluster?.close());

  const liveCount = async () => (await cluster.gql('{ cluster { liveDatanodeCount } }')).cluster.liveDatanodeCount as number;

  it('refuses uploadFragment (counting nothing) until the datanode is back, then completes', async () => {
    const bytes = bytesOf(2 * FRAGMENT + 5, 1);
    const session = await beginUpload(cluster, { name: 'interrupted.png', size: bytes.length });
    await sendFragment(cluster, session.id, 0, sliceOf(bytes, FRAGMENT, 0));

    const lost = cluster.nodes[1];
    const port = Number(new URL(lost.url).port);
    await lost.close();
    await until(async () => (await liveCount()) === 1, 'the datanode to be DOWN');

    const before = await stateOf(cluster, [session.id]);
    for (const multipart of [false, true]) {
      const res = await sendFragmentRaw(cluster, session.id, 1, sliceOf(bytes, FRAGMENT, 1), { multipart });
      expect(codeOf(res)).toBe('INSUFFICIENT_DATANODES');
    }
    expect(codeOf(await cluster.gql.request(BEGIN, { i: { name: 'other.png', size: 10 } }))).toBe('INSUFFICIENT_DATANODES');
    expect(codeOf(await uploadImageRaw(cluster, 'other.png', bytesOf(10)))).toBe('INSUFFICIENT_DATANODES');
    expect(await stateOf(cluster, [session.id])).toEqual(before);
    expect((await cluster.gql(UPLOAD, { u: session.id })).upload.receivedFragments).toEqual([0]);

    // The same datanode (same port, same data dir) comes back: the upload goes on.
    cluster.nodes[1] = await startDatanode(lost.dataDir, undefined, 1, port);
    await until(async () => (await liveCount()) === 2, 'the datanode to be UP again');
    for (const i of [2, 1]) await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
    const image = await completeUpload(cluster, session.id);
    expect(image.sha256).toBe(sha256(bytes));
    const res = await fetch(image.url);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });
});
