// The client's read and admin calls against a real cluster: listing page by page and as one
// iterator, stat with fragments and replicas, remove, nodes, cluster, and live events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { createTesseraClient, TesseraClientError, type ClusterEvent, type TesseraClient } from '../src/client/index.ts';

let cluster: TestCluster;
let client: TesseraClient;
const put = (name: string, size = 100) => client.upload(Readable.from([randomBytes(size)]), { name, size });
const names = ['p/a', 'p/b', 'p/c', 'p/d', 'p/e', 'p/f', 'p/g'];

beforeAll(async () => {
  cluster = await startCluster();
  client = createTesseraClient({ url: cluster.url, stateDir: false });
  await Promise.all([...names, 'other', 'q/x'].map((n) => put(n)));
});
afterAll(async () => {
  client?.close();
  await cluster?.close();
});

describe('list', () => {
  it('pages through every image of a prefix with first/after, in name order', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await client.list({ prefix: 'p/', first: 3, after });
      expect(page.totalCount).toBe(7);
      seen.push(...page.images.map((i) => i.name));
      pages++;
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor!;
    }
    expect(seen).toEqual(names);
    expect(pages).toBe(3);
  });

  it('listAll walks all pages', async () => {
    const all: string[] = [];
    for await (const image of client.listAll({ pageSize: 2 })) all.push(image.name);
    expect(all).toEqual([...names, 'other', 'q/x'].sort());
  });
});

describe('stat, remove, nodes, cluster', () => {
  it('stat shows every fragment with its replicas; a missing name is IMAGE_NOT_FOUND', async () => {
    await put('big', 3 * 64 * 1024 + 1);
    const image = await client.stat('big');
    expect(image).toMatchObject({ name: 'big', size: 3 * 64 * 1024 + 1, fragmentCount: 4 });
    expect(image.fragments.map((f) => f.index)).toEqual([0, 1, 2, 3]);
    for (const f of image.fragments) {
      expect(f.replicas).toHaveLength(2);
      expect(f.replicas[0]).toMatchObject({ id: expect.any(String), url: expect.stringMatching(/^http:/), status: 'UP' });
    }
    await expect(client.stat('nope')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });

  it('remove answers true, then false', async () => {
    await put('gone');
    expect(await client.remove('gone')).toBe(true);
    expect(await client.remove('gone')).toBe(false);
  });

  it('nodes and cluster describe the datanodes', async () => {
    const nodes = await client.nodes();
    expect(nodes).toHaveLength(3);
    for (const n of nodes)
      expect(n).toMatchObject({
        status: 'UP',
        url: expect.stringMatching(/^http:/),
        fragmentCount: expect.any(Number),
        storedBytes: expect.any(Number),
      });
    expect(await client.cluster()).toMatchObject({ datanodeCount: 3, liveDatanodeCount: 3, replicationFactor: 2, fragmentSize: 64 * 1024 });
  });

  it('an unreachable coordinator is a NETWORK_ERROR', async () => {
    const dead = createTesseraClient({ url: 'http://127.0.0.1:1', stateDir: false, retry: { retries: 0 } });
    const err = await dead.nodes().catch((e) => e);
    dead.close();
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('NETWORK_ERROR');
  });
});

describe('subscribe', () => {
  it('delivers ImageStored and ImageDeleted of uploads made elsewhere', async () => {
    const events: ClusterEvent[] = [];
    let notify = () => {};
    const sub = client.subscribe((e) => {
      events.push(e);
      notify();
    });
    await sub.ready;
    const other = createTesseraClient({ url: cluster.url, stateDir: false });
    const waitFor = (match: (e: ClusterEvent) => boolean) =>
      new Promise<ClusterEvent>((resolve) => {
        notify = () => {
          const hit = events.find(match);
          if (hit) resolve(hit);
        };
        notify();
      });
    try {
      await other.upload(Readable.from([Buffer.from('watched bytes')]), { name: 'watched', size: 13 });
      const stored = await waitFor((e) => e.__typename === 'ImageStored' && 'name' in e && e.name === 'watched');
      expect(stored).toMatchObject({
        __typename: 'ImageStored',
        name: 'watched',
        size: 13,
        message: expect.any(String),
        at: expect.any(String),
      });
      await other.remove('watched');
      expect(await waitFor((e) => e.__typename === 'ImageDeleted')).toMatchObject({ name: 'watched' });
    } finally {
      other.close();
      sub.close();
    }
    await sub.done;
  });
});
