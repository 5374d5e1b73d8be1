// A one-fragment upload (PUT /images, uploadImage) reserves its name and records the write
// intents of its first datanodes in one commit, before any byte leaves: at every moment a copy on
// a datanode is covered by an intent or a replica row, so the reconciler never takes it for an
// orphan, and a write the index never counts (a failure, a crash) becomes a deletion, not a leak.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { bytesOf, imagePath } from './support/images.ts';
import { rawFetch } from './support/tokens.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(() => cluster?.close());
afterEach(() => vi.restoreAllMocks());

const put = (name: string, body: Uint8Array) =>
  rawFetch(imagePath(cluster, name), {
    method: 'PUT',
    body: new Uint8Array(body),
    headers: { authorization: `Bearer ${cluster.adminToken}` },
  });

const idAt = (url: string) => cluster.app.registry.all().find((n) => n.url === url)!.id;

/** Spies on the replica writes: each one records whether the index covered that copy when it started. */
function watchWrites() {
  const { client, catalog } = cluster.app;
  const original = client.putFragment.bind(client);
  const writes: { fragmentId: string; datanodeId: string; covered: boolean }[] = [];
  const spy = vi.spyOn(client, 'putFragment').mockImplementation(async (url, fragmentId, ...rest) => {
    const datanodeId = idAt(url);
    writes.push({ fragmentId, datanodeId, covered: await catalog.accountsFor(fragmentId, datanodeId) });
    return original(url, fragmentId, ...rest);
  });
  return { writes, spy, original };
}

const intentCount = async () => Number((await cluster.app.indexSql('SELECT count(*) AS n FROM write_intents'))[0].n);

const replicasOf = async (name: string) => {
  const image = (await cluster.app.catalog.imageByName(name))!;
  return (await cluster.app.catalog.fragmentsWithReplicas(image.id)).flatMap((f) => f.replicas.map((d) => ({ fragmentId: f.id, d })));
};

describe('one-fragment uploads and their write intents', () => {
  it('every copy is covered by a committed intent when its write starts, and by a replica row once stored; no intent is left', async () => {
    const { writes } = watchWrites();
    const res = await put('intents/covered.bin', bytesOf(3000, 1));
    expect(res.status).toBe(201);
    expect(writes).toHaveLength(2);
    expect(writes.every((w) => w.covered)).toBe(true);
    const stored = await replicasOf('intents/covered.bin');
    expect(stored.map((r) => r.d).sort()).toEqual(writes.map((w) => w.datanodeId).sort());
    for (const r of stored) expect(await cluster.app.catalog.accountsFor(r.fragmentId, r.d)).toBe(true);
    expect(await intentCount()).toBe(0);
  });

  it('reserves the name and records the intents in one call (one commit): insertUploadWithIntents, never insertUpload nor addWriteIntents', async () => {
    const { catalog } = cluster.app;
    const together = vi.spyOn(catalog, 'insertUploadWithIntents');
    const apart = [vi.spyOn(catalog, 'insertUpload'), vi.spyOn(catalog, 'addWriteIntents')];
    const { writes } = watchWrites();
    expect((await put('intents/one-commit.bin', bytesOf(1000, 6))).status).toBe(201);
    expect(together).toHaveBeenCalledTimes(1);
    const [row, fragmentId, datanodeIds] = together.mock.calls[0];
    expect(row.name).toBe('intents/one-commit.bin');
    // The intents it recorded are those of the copies then written.
    expect(writes.map((w) => w.fragmentId)).toEqual([fragmentId, fragmentId]);
    expect([...datanodeIds].sort()).toEqual(writes.map((w) => w.datanodeId).sort());
    for (const spy of apart) expect(spy).not.toHaveBeenCalled();
  });

  it('a name already held records no intent and writes nothing', async () => {
    expect((await put('intents/taken.bin', bytesOf(100, 2))).status).toBe(201);
    const { writes } = watchWrites();
    const res = await put('intents/taken.bin', bytesOf(100, 3));
    expect(res.status).toBe(409);
    expect(writes).toHaveLength(0);
    expect(await intentCount()).toBe(0);
  });

  it('a datanode that refuses: its intent is released, the one tried instead is covered before its write', async () => {
    const { writes, spy, original } = watchWrites();
    let refused: string | undefined;
    spy.mockImplementation(async (url, fragmentId, ...rest) => {
      const datanodeId = idAt(url);
      writes.push({ fragmentId, datanodeId, covered: await cluster.app.catalog.accountsFor(fragmentId, datanodeId) });
      if (refused === undefined) {
        refused = datanodeId;
        throw new Error('connection reset (test)');
      }
      return original(url, fragmentId, ...rest);
    });
    const res = await put('intents/fallback.bin', bytesOf(2000, 4));
    expect(res.status).toBe(201);
    expect(writes).toHaveLength(3);
    expect(writes.every((w) => w.covered)).toBe(true);
    const stored = (await replicasOf('intents/fallback.bin')).map((r) => r.d);
    expect(stored).toHaveLength(2);
    expect(stored).not.toContain(refused);
    expect(await intentCount()).toBe(0);
  });

  it('copies written but not yet recorded stay covered by their intents, which a restart turns into deletions', async () => {
    const { catalog } = cluster.app;
    const { writes } = watchWrites();
    let reached!: () => void;
    const recording = new Promise<void>((resolve) => (reached = resolve));
    let resume!: () => void;
    const held = new Promise<void>((resolve) => (resume = resolve));
    // The coordinator "stops" between the writes and the record: the record never commits.
    vi.spyOn(catalog, 'recordOnlyFragmentAndComplete').mockImplementation(async () => {
      reached();
      await held;
      throw new Error('the coordinator died here (test)');
    });
    const answer = put('intents/crash.bin', bytesOf(1500, 5));
    await recording;
    expect(writes).toHaveLength(2);
    for (const w of writes) expect(await catalog.accountsFor(w.fragmentId, w.datanodeId)).toBe(true);
    // What the restart does with the intents a dead coordinator left: both copies become deletions.
    expect(await catalog.releaseAllWriteIntents(Date.now())).toEqual({ deletions: 2, recorded: 0 });
    const queued = await catalog.deletionTargetsOf(writes[0].fragmentId);
    expect(queued.sort()).toEqual(writes.map((w) => w.datanodeId).sort());
    resume();
    expect((await answer).status).toBe(500);
    expect(await cluster.app.catalog.imageHoldingName('intents/crash.bin')).toBeUndefined();
    expect(await intentCount()).toBe(0);
  });
});
