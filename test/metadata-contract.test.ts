// One contract for the metadata layer, run against every engine (as tus-node-server runs one
// store contract against every store): SQLite in a temp file and PostgreSQL in a fresh database
// of a real server (skipped with the reason in its name when none answers). Same calls, same
// answers: images and uploads, fragments and replicas, the deletion queue and write intents,
// datanodes, tokens, renditions, listings, and the races several coordinators bring.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { metadataEngines, type EngineUnderTest, type Store } from './support/metadata-engines.ts';
import type { ImageRow } from '../src/metadata/catalog.ts';
import { uploadRow } from './support/upload-rows.ts';
import type { SqliteMetadataStore } from '../src/metadata/store.ts';
import type { PostgresMetadataStore } from '../src/metadata/postgres/index.ts';

const T = 1_700_000_000_000;
const engines = await metadataEngines();

let uploadSeq = 0;
/** A fragment's row as the index answers it. */
const fragmentRow = (upload: Pick<ImageRow, 'id'>, idx: number, id: string, size = 4) => ({
  id,
  imageId: upload.id,
  idx,
  size,
  sha256: id.padEnd(64, '0'),
});
/** A fragment to record: its row and its upload's key. */
const fragment = (upload: Pick<ImageRow, 'id' | 'imageKey'>, idx: number, id: string, size = 4) => ({
  ...fragmentRow(upload, idx, id, size),
  imageKey: upload.imageKey,
});
const HASH = 'ab'.repeat(32);

/** The code of a rejected promise (undefined when it fulfilled). */
async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

function helpers(get: () => Store) {
  /** A new upload's row, not yet inserted. */
  const newUpload = (name: string, size = 10, fragmentSize = 4, expiresAt = T + 1000) =>
    uploadRow(name, `u${++uploadSeq}-${Math.random().toString(36).slice(2)}`, T, size, fragmentSize, expiresAt);
  const upload = (name: string, size = 10, fragmentSize = 4, expiresAt = T + 1000, s = get()) =>
    s.catalog.insertUpload(newUpload(name, size, fragmentSize, expiresAt));
  const store = async (name: string, size = 4) => {
    const u = await upload(name, size, size);
    const fid = `f-${Buffer.from(name).toString('hex')}`;
    expect(await get().catalog.recordOnlyFragmentAndComplete(fragment(u, 0, fid, size), ['a', 'b'], HASH, T)).toBe('done');
    return (await get().catalog.imageById(u.id))!;
  };
  const deletions = async () =>
    (await get().catalog.dueDeletions(Number.MAX_SAFE_INTEGER, 1000)).map((d) => `${d.fragmentId}@${d.datanodeId}`).sort();
  return { newUpload, upload, store, deletions };
}

function contract(engine: EngineUnderTest) {
  let s: Store;
  const h = helpers(() => s);
  beforeAll(() => engine.setUp());
  afterAll(() => engine.tearDown());
  beforeEach(async () => {
    s = await engine.open();
    for (const id of ['a', 'b', 'c']) await s.datanodes.insert(id, `http://127.0.0.1:1/${id}`, T);
  });
  return {
    get s() {
      return s;
    },
    h,
    engine,
  };
}

for (const engine of engines) {
  describe.skipIf(engine.skip !== undefined)(
    `metadata contract on ${engine.name}${engine.skip ? ` (skipped: ${engine.skip})` : ''}`,
    () => {
      const c = contract(engine);
      imagesContract(c);
      fragmentsContract(c);
      completionContract(c);
      deletionContract(c);
      tablesContract(c);
      listingContract(c);
      racesContract(c);
    },
  );
}

type Ctx = ReturnType<typeof contract>;

/** Queues a deletion row as it is, bypassing the catalog's checks (a row an older version left). */
async function queueRaw(s: Store, fragmentId: string, datanodeId: string, reason: string) {
  const insert = `INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason) VALUES`;
  if (s.engine === 'sqlite') (s as SqliteMetadataStore).db.prepare(`${insert} (?, ?, ?, 0, ?)`).run(fragmentId, datanodeId, T, reason);
  else await (s as PostgresMetadataStore).sql(`${insert} ($1, $2, $3, 0, $4)`, [fragmentId, datanodeId, T, reason]);
}

function imagesContract(c: Ctx) {
  describe('images and uploads', () => {
    it('insertUpload reserves the name: a second upload of it is IMAGE_ALREADY_EXISTS, while open and once stored', async () => {
      const first = await c.h.upload('x.png', 4, 4);
      expect(first).toMatchObject({ name: 'x.png', state: 'uploading', uploadId: expect.any(String), size: 4, mediaChecked: 0 });
      expect(typeof first.id).toBe('number');
      expect(first.imageKey).toMatch(/^[A-Za-z0-9_-]{22}$/);
      // The row it answers is the row as stored (the upload path uses it without reading it back).
      expect(first).toEqual(await c.s.catalog.imageById(first.id));
      expect(await codeOf(c.h.upload('x.png'))).toBe('IMAGE_ALREADY_EXISTS');
      expect(await c.s.catalog.recordOnlyFragmentAndComplete(fragment(first, 0, 'f0'), ['a', 'b'], HASH, T)).toBe('done');
      expect(await codeOf(c.h.upload('x.png'))).toBe('IMAGE_ALREADY_EXISTS');
    });

    it('compares names byte for byte, and frees a name once its image or upload is deleted', async () => {
      await c.h.upload('é');
      expect(await codeOf(c.h.upload('e\u0301'))).toBeUndefined();
      expect(await codeOf(c.h.upload('É'))).toBeUndefined();
      const u = await c.h.upload('again.png');
      expect(await c.s.catalog.deleteImage(u.id, T)).toBe(true);
      expect(await c.s.catalog.deleteImage(u.id, T)).toBe(false);
      expect((await c.h.upload('again.png')).name).toBe('again.png');
    });

    it('finds rows by upload id, name, id and key; counts and totals', async () => {
      const open = await c.h.upload('open.png', 10);
      const stored = await c.h.store('stored.png', 6);
      expect((await c.s.catalog.uploadById(open.uploadId!))?.id).toBe(open.id);
      expect(await c.s.catalog.uploadById('nope')).toBeUndefined();
      expect(await c.s.catalog.imageByName('open.png')).toBeUndefined();
      expect((await c.s.catalog.imageHoldingName('open.png'))?.id).toBe(open.id);
      expect(await c.s.catalog.imageByName('stored.png')).toEqual(stored);
      expect(await c.s.catalog.imageById(stored.id)).toEqual(stored);
      expect(await c.s.catalog.imageByKey(stored.imageKey)).toEqual(stored);
      expect(await c.s.catalog.imageById(999_999)).toBeUndefined();
      expect(stored).toMatchObject({ state: 'stored', uploadId: null, expiresAt: null, sha256: HASH, fragmentCount: 1, size: 6 });
      expect(await c.s.catalog.imageCount()).toBe(2);
      expect((await c.s.catalog.storedImages()).map((i) => i.name)).toEqual(['stored.png']);
      expect(await c.s.catalog.totals()).toEqual({ imageCount: 1, storedBytes: 6 });
    });

    it('setMedia records what detection found, and the content type when given', async () => {
      const img = await c.h.store('m.png');
      await c.s.catalog.setMedia(img, { format: 'PNG', width: 3, height: 2, orientation: 1 });
      expect(await c.s.catalog.imageById(img.id)).toMatchObject({ format: 'PNG', width: 3, height: 2, orientation: 1, mediaChecked: 1 });
      expect((await c.s.catalog.imageById(img.id))?.contentType).toBe('image/png');
      await c.s.catalog.setMedia(img, { format: null, width: null, height: null, orientation: null }, 'application/octet-stream');
      expect(await c.s.catalog.imageById(img.id)).toMatchObject({ format: null, width: null, contentType: 'application/octet-stream' });
    });

    it('expiredUploads lists open uploads whose expiry has passed, not stored images', async () => {
      await c.h.upload('old.png', 4, 4, T - 1);
      await c.h.upload('young.png', 4, 4, T + 1);
      await c.h.upload('just-now.png', 4, 4, T);
      await c.h.store('stored.png');
      expect((await c.s.catalog.expiredUploads(T)).map((x) => x.name).sort()).toEqual(['just-now.png', 'old.png']);
    });

    it('insertRebuiltImages inserts a batch; a name or key taken meanwhile fails that image alone', async () => {
      await c.h.upload('taken.png');
      const rebuilt = (name: string, key: string) => ({
        image: { imageKey: key, name, size: 8, contentType: 'image/png', sha256: HASH, fragmentSize: 4, createdAt: T },
        fragments: [
          { id: `${key}-0`, idx: 0, size: 4, sha256: HASH, replicas: ['a', 'b'] },
          { id: `${key}-1`, idx: 1, size: 4, sha256: HASH, replicas: ['c'] },
        ],
      });
      const answers = await c.s.catalog.insertRebuiltImages([rebuilt('r1.png', 'k1'), rebuilt('taken.png', 'k2'), rebuilt('r3.png', 'k3')]);
      expect(answers).toEqual([true, false, true]);
      expect(await c.s.catalog.imageByName('r1.png')).toMatchObject({ state: 'stored', fragmentCount: 2, imageKey: 'k1' });
      expect(await c.s.catalog.imageByKey('k2')).toBeUndefined();
      expect(await c.s.catalog.fragmentById('k2-0')).toBeUndefined();
      expect((await c.s.catalog.fragmentsWithReplicas((await c.s.catalog.imageByKey('k3'))!.id)).map((f) => f.replicas)).toEqual([
        ['a', 'b'],
        ['c'],
      ]);
      expect(await c.s.catalog.insertRebuiltImage(rebuilt('r4.png', 'k1').image, [])).toBe(false);
    });
  });
}

function fragmentsContract(c: Ctx) {
  describe('fragments and replicas', () => {
    it('recordFragment records a fragment and its replicas, and keeps the upload alive', async () => {
      const u = await c.h.upload('a.png');
      expect(await c.s.catalog.recordFragment(fragment(u, 1, 'f1'), ['c', 'a'], T + 5000, T)).toBe('new');
      expect(await c.s.catalog.receivedIndexes(u.id)).toEqual([1]);
      expect(await c.s.catalog.replicasOf('f1')).toEqual(['a', 'c']);
      expect((await c.s.catalog.uploadById(u.uploadId!))!.expiresAt).toBe(T + 5000);
      expect(await c.s.catalog.fragmentById('f1')).toEqual(fragmentRow(u, 1, 'f1'));
      expect(await c.h.deletions()).toEqual([]);
    });

    it('replacing an index moves the old fragment replicas to the deletion queue', async () => {
      const u = await c.h.upload('a.png');
      await c.s.catalog.recordFragment(fragment(u, 0, 'old'), ['a', 'b'], T + 1000, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'other'), ['b', 'c'], T + 1000, T);
      await c.s.catalog.addWriteIntents('new', ['b', 'c']);
      expect(await c.s.catalog.recordFragment(fragment(u, 0, 'new'), ['b', 'c'], T + 2000, T + 1)).toBe('replaced');
      expect((await c.s.catalog.fragments(u.id)).map((f) => [f.idx, f.id])).toEqual([
        [0, 'new'],
        [1, 'other'],
      ]);
      expect(await c.s.catalog.replicasOf('old')).toEqual([]);
      expect(await c.s.catalog.replicasOf('new')).toEqual(['b', 'c']);
      expect(await c.h.deletions()).toEqual(['old@a', 'old@b']);
      expect((await c.s.catalog.dueDeletions(T + 1)).map((d) => [d.fragmentId, d.reason])).toEqual([
        ['old', 'fragment-replaced'],
        ['old', 'fragment-replaced'],
      ]);
      expect(await c.s.catalog.accountsFor('new', 'b')).toBe(true);
      expect(await c.s.catalog.deletionTargetsOf('new')).toEqual([]);
    });

    it('refuses a fragment for an upload that is completed, gone or expired, storing nothing', async () => {
      const u = await c.h.upload('a.png', 4);
      await c.s.catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
      expect(await c.s.catalog.completeUpload(u.id, ['f0'], HASH, T)).toBe('done');
      expect(await c.s.catalog.recordFragment(fragment(u, 0, 'late'), ['a', 'b'], T + 1, T)).toBe(false);
      expect((await c.s.catalog.fragments(u.id)).map((f) => f.id)).toEqual(['f0']);
      const v = await c.h.upload('b.png', 4);
      await c.s.catalog.deleteImage(v.id, T);
      expect(await c.s.catalog.recordFragment(fragment(v, 0, 'orphan'), ['a', 'b'], T + 1, T)).toBe(false);
      const w = await c.h.upload('late.png', 10, 4, T + 10);
      expect(await c.s.catalog.recordFragment(fragment(w, 0, 'too-late'), ['a', 'b'], T + 1000, T + 10)).toBe(false);
      expect(await c.s.catalog.fragments(w.id)).toEqual([]);
      expect(await c.s.catalog.fragmentById('orphan')).toBeUndefined();
    });

    it("refuses a fragment whose upload key is not the row's: the id belongs to another upload since", async () => {
      const u = await c.h.upload('key.png', 4);
      const other = { id: u.id, imageKey: `${u.imageKey}-aborted` };
      expect(await c.s.catalog.recordFragment(fragment(other, 0, 'k0'), ['a', 'b'], T + 1, T)).toBe(false);
      expect(await c.s.catalog.recordOnlyFragmentAndComplete(fragment(other, 0, 'k1'), ['a', 'b'], HASH, T)).toBe(false);
      await c.s.catalog.setMedia(other, { format: 'PNG', width: 3, height: 2, orientation: 1 }, 'image/png');
      expect(await c.s.catalog.fragments(u.id)).toEqual([]);
      expect(await c.s.catalog.imageById(u.id)).toEqual(u);
      expect(await c.s.catalog.recordOnlyFragmentAndComplete(fragment(u, 0, 'k2'), ['a', 'b'], HASH, T)).toBe('done');
    });

    it('answers fragments with their replicas, in ranges, per datanode and page by page', async () => {
      const u = await c.h.upload('r.png', 12);
      await c.s.catalog.recordFragment(fragment(u, 0, 'r0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'r1'), ['b', 'c'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 2, 'r2'), ['c'], T + 1, T);
      expect(await c.s.catalog.fragmentsWithReplicas(u.id)).toEqual([
        { ...fragmentRow(u, 0, 'r0'), replicas: ['a', 'b'] },
        { ...fragmentRow(u, 1, 'r1'), replicas: ['b', 'c'] },
        { ...fragmentRow(u, 2, 'r2'), replicas: ['c'] },
      ]);
      expect((await c.s.catalog.fragmentsInRange(u.id, 1, 2)).map((f) => [f.id, f.replicas])).toEqual([
        ['r1', ['b', 'c']],
        ['r2', ['c']],
      ]);
      expect(await c.s.catalog.fragmentsInRange(u.id, 5, 9)).toEqual([]);
      expect((await c.s.catalog.fragmentsOn('b', 10)).map((f) => f.id).sort()).toEqual(['r0', 'r1']);
      expect(await c.s.catalog.fragmentsOn('b', 1)).toHaveLength(1);
      expect([...(await c.s.catalog.replicaIdsOn('c'))].sort()).toEqual(['r1', 'r2']);
      expect(await c.s.catalog.replicaCountOn('a')).toBe(1);
      const page1 = await c.s.catalog.replicaPage({ fragmentId: '', datanodeId: '' }, 3);
      expect(page1.map((r) => `${r.fragmentId}@${r.datanodeId}`)).toEqual(['r0@a', 'r0@b', 'r1@b']);
      expect(page1[0]).toEqual({ fragmentId: 'r0', datanodeId: 'a', size: 4, sha256: 'r0'.padEnd(64, '0') });
      const page2 = await c.s.catalog.replicaPage(page1[2]!, 3);
      expect(page2.map((r) => `${r.fragmentId}@${r.datanodeId}`)).toEqual(['r1@c', 'r2@c']);
    });

    it('counts under-replicated fragments of stored images on live datanodes, draining ones excluded', async () => {
      for (const id of ['a', 'b', 'c']) {
        const row = (await c.s.datanodes.all()).find((d) => d.id === id)!;
        await c.s.datanodes.save({ ...row, status: id === 'c' ? 'DOWN' : 'UP' });
      }
      const img = await c.h.store('u.png'); // on a, b
      const u = await c.h.upload('open.png', 4);
      await c.s.catalog.recordFragment(fragment(u, 0, 'o0'), ['c'], T + 1, T);
      expect(await c.s.catalog.underReplicatedCount(2)).toBe(0);
      expect(await c.s.catalog.underReplicatedCount(3)).toBe(1);
      expect(await c.s.catalog.underReplicatedCount(2, ['b'])).toBe(1);
      expect(await c.s.catalog.underReplicatedCount(2, [])).toBe(0);
      expect(img.state).toBe('stored');
    });

    it('moveReplicas adds and drops replicas (queuing the dropped files); false when the fragment is gone', async () => {
      const img = await c.h.store('m.png'); // f on a, b
      const fid = (await c.s.catalog.fragments(img.id))[0]!.id;
      await c.s.catalog.addWriteIntents(fid, ['c']);
      expect(await c.s.catalog.moveReplicas(fid, ['c'], ['a'], T)).toBe(true);
      expect(await c.s.catalog.replicasOf(fid)).toEqual(['b', 'c']);
      expect((await c.s.catalog.dueDeletions(T)).map((d) => [`${d.fragmentId}@${d.datanodeId}`, d.reason])).toEqual([
        [`${fid}@a`, 'surplus-replica'],
      ]);
      expect(await c.s.catalog.deletionTargetsOf(fid)).toEqual(['a']);
      expect(await c.s.catalog.moveReplicas('no-such', ['a'], [], T)).toBe(false);
      expect(await c.s.catalog.replicasOf('no-such')).toEqual([]);
    });

    it('accountsFor a replica, a queued deletion or a write in flight; doomOrphan queues the unaccounted', async () => {
      const img = await c.h.store('o.png');
      const fid = (await c.s.catalog.fragments(img.id))[0]!.id;
      expect(await c.s.catalog.accountsFor(fid, 'a')).toBe(true);
      expect(await c.s.catalog.accountsFor(fid, 'c')).toBe(false);
      await c.s.catalog.doomOrphan('stray', 'c', T);
      await c.s.catalog.doomOrphan('dead', 'c', T, 'key-of-deleted');
      expect(await c.s.catalog.accountsFor('stray', 'c')).toBe(true);
      expect(
        (await c.s.catalog.dueDeletions(T)).map((d) => [d.fragmentId, d.reason, d.imageKey]).sort((x, y) => x[0]!.localeCompare(y[0]!)),
      ).toEqual([
        ['dead', 'image-deleted', 'key-of-deleted'],
        ['stray', 'orphan', null],
      ]);
    });
  });
}

function completionContract(c: Ctx) {
  describe('completion and deletion', () => {
    it("completeUpload answers 'done' and makes the image visible with its hash and createdAt", async () => {
      const u = await c.h.upload('done.png', 8);
      await c.s.catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'f1'), ['b', 'c'], T + 1, T);
      expect(await c.s.catalog.imageByName('done.png')).toBeUndefined();
      expect(await c.s.catalog.completeUpload(u.id, ['f0', 'f1'], HASH, T + 7)).toBe('done');
      expect(await c.s.catalog.imageByName('done.png')).toMatchObject({ state: 'stored', sha256: HASH, uploadId: null, createdAt: T + 7 });
      expect(await c.s.catalog.uploadById(u.uploadId!)).toBeUndefined();
      expect(await c.s.catalog.totals()).toEqual({ imageCount: 1, storedBytes: 8 });
    });

    it("completeUpload answers 'changed' when the fragment set moved, changing nothing", async () => {
      const u = await c.h.upload('changed.png', 8);
      await c.s.catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'f1'), ['a', 'b'], T + 1, T);
      const seen = (await c.s.catalog.fragments(u.id)).map((f) => f.id);
      await c.s.catalog.recordFragment(fragment(u, 1, 'f1b'), ['a', 'c'], T + 1, T);
      expect(await c.s.catalog.completeUpload(u.id, seen, HASH, T)).toBe('changed');
      expect(await c.s.catalog.uploadById(u.uploadId!)).toMatchObject({ state: 'uploading' });
      expect(await c.s.catalog.completeUpload(u.id, ['f0'], HASH, T)).toBe('changed');
      expect(await c.s.catalog.completeUpload(u.id, ['f0', 'f1b'], HASH, T)).toBe('done');
    });

    it("completeUpload answers 'gone' for an aborted, unknown or already completed upload", async () => {
      const u = await c.h.upload('gone.png', 4);
      expect(await c.s.catalog.recordOnlyFragmentAndComplete(fragment(u, 0, 'f0'), ['a', 'b'], HASH, T)).toBe('done');
      expect(await c.s.catalog.completeUpload(u.id, ['f0'], HASH, T)).toBe('gone');
      expect(await c.s.catalog.recordOnlyFragmentAndComplete(fragment(u, 0, 'f0b'), ['a'], HASH, T)).toBe(false);
      const v = await c.h.upload('aborted.png', 4);
      await c.s.catalog.deleteImage(v.id, T, 'upload-aborted');
      expect(await c.s.catalog.completeUpload(v.id, [], HASH, T)).toBe('gone');
      expect(await c.s.catalog.completeUpload(999_999, [], HASH, T)).toBe('gone');
    });

    it('deleteImage removes the image, its fragments and replicas at once and queues every file with its reason and key', async () => {
      const u = await c.h.upload('del.png', 8);
      await c.s.catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'f1'), ['b', 'c'], T + 1, T);
      await c.s.catalog.completeUpload(u.id, ['f0', 'f1'], HASH, T);
      expect(await c.s.catalog.deleteImage(u.id, T + 3)).toBe(true);
      expect(await c.s.catalog.imageByName('del.png')).toBeUndefined();
      expect(await c.s.catalog.fragments(u.id)).toEqual([]);
      expect(await c.s.catalog.replicasOf('f0')).toEqual([]);
      expect(await c.h.deletions()).toEqual(['f0@a', 'f0@b', 'f1@b', 'f1@c']);
      expect(new Set((await c.s.catalog.dueDeletions(T + 3)).map((d) => `${d.reason}:${d.imageKey}`))).toEqual(
        new Set([`image-deleted:${u.imageKey}`]),
      );
      expect(await c.s.catalog.totals()).toEqual({ imageCount: 0, storedBytes: 0 });
      await c.s.catalog.ackDeletions(await c.s.catalog.dueDeletions(T + 3));
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
      const v = await c.h.upload('aborted.png', 4);
      await c.s.catalog.recordFragment(fragment(v, 0, 'v0'), ['a'], T + 1, T);
      await c.s.catalog.deleteImage(v.id, T, 'upload-aborted');
      expect(await c.s.catalog.dueDeletions(T)).toEqual([
        { fragmentId: 'v0', datanodeId: 'a', attempts: 0, reason: 'upload-aborted', imageKey: null },
      ]);
    });

    it('deleteStoredImage deletes a stored image by name as deleteImage does, and answers its key and holders', async () => {
      const u = await c.h.upload('by-name.png', 8);
      await c.s.catalog.recordFragment(fragment(u, 0, 'n0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.recordFragment(fragment(u, 1, 'n1'), ['b', 'c'], T + 1, T);
      // An open upload is not a stored image: nothing happens to it.
      expect(await c.s.catalog.deleteStoredImage('by-name.png', T)).toBeUndefined();
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
      await c.s.catalog.completeUpload(u.id, ['n0', 'n1'], HASH, T);
      const deleted = await c.s.catalog.deleteStoredImage('by-name.png', T + 3);
      expect({ ...deleted!, holders: [...deleted!.holders].sort() }).toEqual({ imageKey: u.imageKey, holders: ['a', 'b', 'c'] });
      expect(await c.s.catalog.imageByName('by-name.png')).toBeUndefined();
      expect(await c.s.catalog.fragments(u.id)).toEqual([]);
      expect(await c.h.deletions()).toEqual(['n0@a', 'n0@b', 'n1@b', 'n1@c']);
      expect(new Set((await c.s.catalog.dueDeletions(T + 3)).map((d) => `${d.reason}:${d.imageKey}`))).toEqual(
        new Set([`image-deleted:${u.imageKey}`]),
      );
      expect(await c.s.catalog.deleteStoredImage('by-name.png', T + 4)).toBeUndefined();
      expect(await c.s.catalog.deleteStoredImage('never.png', T + 4)).toBeUndefined();
      expect(await c.s.catalog.totals()).toEqual({ imageCount: 0, storedBytes: 0 });
    });
  });
}

function deletionContract(c: Ctx) {
  describe('deletion queue and write intents', () => {
    it('insertUploadWithIntents commits the upload row and its write intents together (replacing a queued deletion of the file)', async () => {
      await c.s.catalog.doomOrphan('one', 'a', T);
      const row = c.h.newUpload('one.png', 4, 4);
      const u = await c.s.catalog.insertUploadWithIntents(row, 'one', ['a', 'b']);
      expect(u).toMatchObject({ name: 'one.png', state: 'uploading', uploadId: row.uploadId, fragmentCount: 1 });
      expect(u).toEqual(await c.s.catalog.imageById(u.id));
      expect((await c.s.catalog.deletionTargetsOf('one')).sort()).toEqual(['a', 'b']);
      expect(await c.s.catalog.accountsFor('one', 'b')).toBe(true);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0); // intents, not due: the queued one went
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 2, recorded: 0 });
    });

    it('insertUploadWithIntents on a name already held is IMAGE_ALREADY_EXISTS and records no intent', async () => {
      await c.s.catalog.doomOrphan('held', 'a', T);
      await c.h.upload('held.png', 4, 4);
      expect(await codeOf(c.s.catalog.insertUploadWithIntents(c.h.newUpload('held.png', 4, 4), 'held', ['a', 'b']))).toBe(
        'IMAGE_ALREADY_EXISTS',
      );
      expect(await c.s.catalog.accountsFor('held', 'b')).toBe(false);
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
      expect(await c.h.deletions()).toEqual(['held@a']); // still queued, not replaced by an intent
    });

    it('insertUploadWithIntents whose intents fail (an unknown datanode) leaves neither the upload row nor any intent', async () => {
      await c.s.catalog.doomOrphan('lost', 'a', T);
      expect(await codeOf(c.s.catalog.insertUploadWithIntents(c.h.newUpload('lost.png', 4, 4), 'lost', ['a', 'nowhere']))).toBeDefined();
      expect(await c.s.catalog.imageHoldingName('lost.png')).toBeUndefined();
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
      expect(await c.h.deletions()).toEqual(['lost@a']); // the queued deletion's replacement rolled back too
      expect((await c.h.upload('lost.png', 4, 4)).name).toBe('lost.png'); // the name is free
    });

    it('write intents are not due until released, and released ones are', async () => {
      await c.s.catalog.addWriteIntents('w', ['a', 'b']);
      expect(await c.s.catalog.dueDeletions(Number.MAX_SAFE_INTEGER - 1)).toEqual([]);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
      expect((await c.s.catalog.deletionTargetsOf('w')).sort()).toEqual(['a', 'b']);
      await c.s.catalog.releaseWriteIntents('w', ['a'], T);
      expect((await c.s.catalog.dueDeletions(T)).map((d) => `${d.fragmentId}@${d.datanodeId}`)).toEqual(['w@a']);
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 1, recorded: 0 });
      expect(await c.h.deletions()).toEqual(['w@a', 'w@b']);
    });

    it('a write intent replaces a queued deletion of the same file, which an acknowledgement then leaves in place', async () => {
      await c.s.catalog.doomOrphan('w', 'a', T);
      await c.s.catalog.addWriteIntents('w', ['a']);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
      expect(await c.s.catalog.accountsFor('w', 'a')).toBe(true);
      expect(await c.s.catalog.deletionTargetsOf('w')).toEqual(['a']);
      await c.s.catalog.ackDeletion({ fragmentId: 'w', datanodeId: 'a', reason: 'orphan', imageKey: null });
      expect(await c.s.catalog.accountsFor('w', 'a')).toBe(true);
      await c.s.catalog.releaseWriteIntents('w', ['a'], T);
      expect(await c.s.catalog.dueDeletions(T)).toEqual([
        { fragmentId: 'w', datanodeId: 'a', attempts: 0, reason: 'unrecorded-write', imageKey: null },
      ]);
    });

    it('write intents end when the write is recorded, and go with their datanode when it leaves', async () => {
      const u = await c.h.upload('w.png', 4);
      await c.s.catalog.addWriteIntents('f0', ['a', 'b']);
      await c.s.catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
      await c.s.catalog.releaseWriteIntents('f0', ['a', 'b'], T);
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
      await c.s.catalog.addWriteIntents('w', ['c']);
      await c.s.catalog.doomOrphan('x', 'c', T);
      await c.s.catalog.purgeDeletionsOn('c');
      expect(await c.s.catalog.accountsFor('w', 'c')).toBe(false);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
    });

    it('due deletions come longest-waiting first; retries count attempts, postponing does not; a live datanode resumes its own', async () => {
      await c.s.catalog.doomOrphan('late', 'a', T + 50);
      await c.s.catalog.doomOrphan('early', 'b', T + 10);
      await c.s.catalog.doomOrphan('mid', 'a', T + 20);
      expect((await c.s.catalog.dueDeletions(T + 100)).map((d) => d.fragmentId)).toEqual(['early', 'mid', 'late']);
      expect((await c.s.catalog.dueDeletions(T + 100, 2)).map((d) => d.fragmentId)).toEqual(['early', 'mid']);
      expect(await c.s.catalog.dueDeletions(T + 15)).toHaveLength(1);
      await c.s.catalog.retryDeletionAt({ fragmentId: 'early', datanodeId: 'b' }, T + 1000);
      await c.s.catalog.postponeDeletion({ fragmentId: 'mid', datanodeId: 'a' }, T + 2000);
      await c.s.catalog.postponeDeletion({ fragmentId: 'late', datanodeId: 'a' }, T + 3000);
      expect(await c.s.catalog.dueDeletions(T + 100)).toEqual([]);
      expect((await c.s.catalog.dueDeletions(T + 1000))[0]).toMatchObject({ fragmentId: 'early', attempts: 1 });
      expect(await c.s.catalog.resumeDeletionsOn('a', T + 100)).toBe(2);
      expect((await c.s.catalog.dueDeletions(T + 100)).map((d) => [d.fragmentId, d.attempts]).sort()).toEqual([
        ['late', 0],
        ['mid', 0],
      ]);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(3);
      await c.s.catalog.ackDeletions([
        { fragmentId: 'late', datanodeId: 'a', reason: 'orphan', imageKey: null },
        { fragmentId: 'mid', datanodeId: 'a', reason: 'orphan', imageKey: null },
      ]);
      await c.s.catalog.ackDeletions([]);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(1);
    });

    it('a released intent on a file the index records as a replica (an in-place repair) queues no deletion', async () => {
      await c.h.store('recorded.png');
      const f = `f-${Buffer.from('recorded.png').toString('hex')}`; // recorded on a and b
      await c.s.catalog.addWriteIntents(f, ['a', 'c']);
      await c.s.catalog.releaseWriteIntents(f, ['a', 'c'], T);
      expect(await c.h.deletions()).toEqual([`${f}@c`]);
      expect((await c.s.catalog.replicasOf(f)).sort()).toEqual(['a', 'b']);
      // What the deleter asks before deleting an unrecorded write: a file the index records is
      // settled only while its deletion is queued as an unrecorded write (none is here).
      const asked = [`${f}@b`, `${f}@c`, 'w@a', `${f}@a`].map((k) => ({ fragmentId: k.split('@')[0]!, datanodeId: k.split('@')[1]! }));
      expect(await c.s.catalog.settleRecordedWrites(asked)).toEqual([]);
      expect(await c.s.catalog.settleRecordedWrites([])).toEqual([]);
      expect(await c.h.deletions()).toEqual([`${f}@c`]);
      // The file on c, deleted as an unrecorded write, is recorded after all: its deletion goes.
      expect(await c.s.catalog.moveReplicas(f, ['c'], [], T)).toBe(true);
      expect(await c.h.deletions()).toEqual([]);
      expect(await c.s.catalog.settleRecordedWrites([{ fragmentId: f, datanodeId: 'c' }])).toEqual([]);
    });

    it("settles a recorded file's unrecorded-write deletion, not a deletion that replaced its row (its image deleted)", async () => {
      const img = await c.h.store('raced.png');
      const f = `f-${Buffer.from('raced.png').toString('hex')}`; // recorded on a and b
      // Deletions queued before releases checked for a replica (no call queues them any more).
      for (const d of ['a', 'b']) await queueRaw(c.s, f, d, 'unrecorded-write');
      const [onA, onB] = ['a', 'b'].map((datanodeId) => ({ fragmentId: f, datanodeId }));
      expect(await c.s.catalog.settleRecordedWrites([onB!, { fragmentId: 'w', datanodeId: 'a' }])).toEqual([onB]);
      expect(await c.h.deletions()).toEqual([`${f}@a`]);
      // The deleter took f@a as an unrecorded write; the image is deleted before it settles it: the
      // row is now the image's deletion, with its key, and stays (acknowledged by file, it went, and
      // the file waited for the orphan reconciler's grace).
      expect(await c.s.catalog.deleteImage(img.id, T)).toBe(true);
      expect(await c.s.catalog.settleRecordedWrites([onA!])).toEqual([]);
      expect((await c.s.catalog.dueDeletions(T)).map((d) => `${d.fragmentId}@${d.datanodeId}:${d.reason}:${d.imageKey}`).sort()).toEqual([
        `${f}@a:image-deleted:${img.imageKey}`,
        `${f}@b:image-deleted:${img.imageKey}`,
      ]);
    });

    it('acknowledges a deletion only as it was sent: one that replaced its row meanwhile (its image deleted) stays queued', async () => {
      const img = await c.h.store('acked.png');
      const f = `f-${Buffer.from('acked.png').toString('hex')}`; // recorded on a and b
      // A write to c is released unrecorded; the deleter takes its deletion and sends it.
      await c.s.catalog.addWriteIntents(f, ['c']);
      await c.s.catalog.releaseWriteIntents(f, ['c'], T);
      const sent = await c.s.catalog.dueDeletions(T);
      expect(sent).toEqual([{ fragmentId: f, datanodeId: 'c', attempts: 0, reason: 'unrecorded-write', imageKey: null }]);
      // Before its answer: the copy on c is recorded after all (a raced recording), then the image
      // is deleted, which queues the deletion of c's file with the image's key in the same row.
      expect(await c.s.catalog.moveReplicas(f, ['c'], [], T)).toBe(true);
      expect(await c.s.catalog.deleteImage(img.id, T)).toBe(true);
      const imageDeletions = await c.s.catalog.dueDeletions(T);
      const rows = async () => (await c.s.catalog.dueDeletions(T)).map((d) => `${d.datanodeId}:${d.reason}:${d.imageKey}`).sort();
      expect(await rows()).toEqual(['a', 'b', 'c'].map((d) => `${d}:image-deleted:${img.imageKey}`));
      // The unrecorded write's acknowledgement leaves the image's deletion of the same file (removed
      // by file, that file waited for the orphan reconciler's grace); so does one with another key.
      await c.s.catalog.ackDeletions(sent);
      await c.s.catalog.ackDeletion({ fragmentId: f, datanodeId: 'b', reason: 'image-deleted', imageKey: null });
      expect(await rows()).toEqual(['a', 'b', 'c'].map((d) => `${d}:image-deleted:${img.imageKey}`));
      await c.s.catalog.ackDeletions(imageDeletions);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
    });

    it('at a restart, intents on files the index records as replicas go without queuing their deletion, counted apart', async () => {
      await c.h.store('recorded.png');
      const f = `f-${Buffer.from('recorded.png').toString('hex')}`;
      await c.s.catalog.addWriteIntents(f, ['a', 'b', 'c']);
      expect(await c.s.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 1, recorded: 2 });
      expect(await c.h.deletions()).toEqual([`${f}@c`]);
      expect(await c.s.catalog.deletionTargetsOf(f)).toEqual(['c']);
      expect((await c.s.catalog.replicasOf(f)).sort()).toEqual(['a', 'b']);
    });

    it("releaseWriteIntentsOf releases the intents of the coordinators named, not this one's", async () => {
      await c.s.catalog.addWriteIntents('mine', ['a']);
      expect(await c.s.catalog.releaseWriteIntentsOf(['some-stopped-coordinator'], T)).toBe(0);
      expect(await c.s.catalog.accountsFor('mine', 'a')).toBe(true);
      expect(await c.s.catalog.pendingDeletionCount()).toBe(0);
    });
  });
}

function tablesContract(c: Ctx) {
  describe('datanodes, cluster id, replication, renditions, tokens, owners, keys', () => {
    it('keeps datanode rows: registration order, samples, draining, identity, moves, removal', async () => {
      const [a] = await c.s.datanodes.all();
      expect(a).toEqual({
        id: 'a',
        url: 'http://127.0.0.1:1/a',
        nodeId: null,
        status: null,
        statusSince: T,
        registeredAt: T,
        lastSeenAt: null,
        cpuPercent: null,
        memoryPercent: null,
        diskPercent: null,
        diskFreeBytes: null,
        fragmentCount: 0,
        storedBytes: 0,
        draining: false,
      });
      const sample = { status: 'UP' as const, statusSince: T + 1, lastSeenAt: T + 2, cpuPercent: 12.5, memoryPercent: 40 };
      await c.s.datanodes.save({ ...a!, ...sample, diskPercent: 50, diskFreeBytes: 5e12, fragmentCount: 7, storedBytes: 3e10 });
      await c.s.datanodes.setDraining('a', true);
      await c.s.datanodes.identify('a', 'node-1');
      await c.s.datanodes.move('a', 'http://127.0.0.1:2/a');
      expect(await c.s.datanodes.byUrl('http://127.0.0.1:2/a')).toMatchObject({
        ...sample,
        diskFreeBytes: 5e12,
        storedBytes: 3e10,
        draining: true,
        nodeId: 'node-1',
      });
      expect(await c.s.datanodes.byUrl('http://127.0.0.1:1/a')).toBeUndefined();
      await c.s.datanodes.remove('a');
      expect((await c.s.datanodes.all()).map((d) => d.id)).toEqual(['b', 'c']);
      expect(await codeOf(c.s.datanodes.insert('d', 'http://127.0.0.1:1/b', T))).toBeDefined();
    });

    it('keeps one cluster id', async () => {
      expect(await c.s.clusterIdentity.load()).toBeUndefined();
      await c.s.clusterIdentity.save('cluster-1', T, 'minted');
      expect(await c.s.clusterIdentity.load()).toBe('cluster-1');
      expect(await codeOf(c.s.clusterIdentity.save('cluster-2', T, 'minted'))).toBeDefined();
      expect(await c.s.clusterIdentity.load()).toBe('cluster-1');
    });

    it('finds fragments at risk (fewest live copies first) and in excess', async () => {
      const one = await c.h.store('one.png'); // a, b
      const u = await c.h.upload('two.png', 4);
      await c.s.catalog.recordOnlyFragmentAndComplete(fragment(u, 0, 'two0'), ['a', 'b', 'c'], HASH, T);
      const oneId = (await c.s.catalog.fragments(one.id))[0]!.id;
      const risk = await c.s.replication.atRisk({
        lost: ['a'],
        counted: ['b', 'c'],
        live: ['b'],
        readable: ['b', 'c'],
        factor: 3,
        skip: [],
        limit: 10,
      });
      expect(risk.map((r) => [r.id, r.copies, r.liveCopies])).toEqual([
        [oneId, 1, 1],
        ['two0', 2, 1],
      ]);
      expect(risk[0]).toMatchObject({ imageId: one.id, idx: 0, size: 4 });
      const skipped = await c.s.replication.atRisk({
        lost: ['a'],
        counted: ['b'],
        live: ['b'],
        readable: ['b'],
        factor: 2,
        skip: [oneId],
        limit: 10,
      });
      expect(skipped.map((r) => r.id)).toEqual(['two0']);
      expect(await c.s.replication.excess(['a', 'b', 'c'], 2)).toEqual(['two0']);
      expect(await c.s.replication.excess(['a'], 2)).toEqual([]);
    });

    it('keeps renditions of stored images only, least recently used first; they go with their source', async () => {
      const source = await c.h.store('src.png');
      const r1 = await c.h.upload('\u0001rendition/x?1', 4);
      const r2 = await c.h.upload('\u0001rendition/x?2', 4);
      const row = (renditionImageId: number, variant: string, lastUsedAt: number) => ({
        renditionImageId,
        sourceImageId: source.id,
        variant,
        size: 4,
        width: 2,
        height: 2,
        lastUsedAt,
      });
      expect(await c.s.renditions.completeRendition(fragment(r1, 0, 'r1f'), ['a'], HASH, T, row(r1.id, 'w=1', T + 5))).toBe(true);
      await c.s.catalog.recordOnlyFragmentAndComplete(fragment(r2, 0, 'r2f'), ['b'], HASH, T);
      expect(await c.s.renditions.insert(row(r2.id, 'w=2', T + 1))).toBe(true);
      expect(await c.s.renditions.find(source.id, 'w=1')).toEqual(row(r1.id, 'w=1', T + 5));
      expect((await c.s.renditions.leastRecent(5)).map((r) => r.variant)).toEqual(['w=2', 'w=1']);
      await c.s.renditions.touch(r2.id, T + 9);
      expect((await c.s.renditions.leastRecent(1)).map((r) => r.variant)).toEqual(['w=1']);
      expect(await c.s.renditions.totals()).toEqual({ bytes: 8, count: 2 });
      const open = await c.h.upload('open.png', 4);
      expect(await c.s.renditions.insert({ ...row(r2.id, 'w=3', T), sourceImageId: open.id })).toBe(false);
      expect(await c.s.catalog.listImages({ first: 10 })).toHaveLength(1);
      expect(await c.s.catalog.deleteImage(source.id, T)).toBe(true);
      expect(await c.s.renditions.totals()).toEqual({ bytes: 0, count: 0 });
      expect(await c.s.catalog.imageById(r1.id)).toBeUndefined();
      expect((await c.s.catalog.dueDeletions(T)).map((d) => `${d.fragmentId}:${d.reason}`).sort()).toEqual([
        `f-${Buffer.from('src.png').toString('hex')}:image-deleted`,
        `f-${Buffer.from('src.png').toString('hex')}:image-deleted`,
        'r1f:rendition-evicted',
        'r2f:rendition-evicted',
      ]);
    });

    it('keeps tokens by hash; revocation once; counts active admins', async () => {
      await c.s.tokens.insert({ id: 't1', name: 'one', role: 'admin', createdAt: T, expiresAt: null }, 'h1');
      await c.s.tokens.insert({ id: 't2', name: 'two', role: 'admin', createdAt: T + 1, expiresAt: T + 10 }, 'h2');
      await c.s.tokens.insert({ id: 't3', name: 'three', role: 'read', createdAt: T + 2, expiresAt: null }, 'h3');
      expect(await c.s.tokens.byHash('h1')).toEqual({
        id: 't1',
        name: 'one',
        role: 'admin',
        createdAt: T,
        expiresAt: null,
        revokedAt: null,
      });
      expect(await c.s.tokens.byHash('nope')).toBeUndefined();
      expect((await c.s.tokens.byId('t2'))?.expiresAt).toBe(T + 10);
      expect((await c.s.tokens.all()).map((t) => t.id)).toEqual(['t1', 't2', 't3']);
      expect(await c.s.tokens.activeAdminCount(T + 5)).toBe(2);
      expect(await c.s.tokens.activeAdminCount(T + 10)).toBe(1);
      expect(await c.s.tokens.revoke('t1', T + 3)).toBe(true);
      expect(await c.s.tokens.revoke('t1', T + 4)).toBe(false);
      expect(await c.s.tokens.revoke('unknown', T)).toBe(false);
      expect((await c.s.tokens.byId('t1'))?.revokedAt).toBe(T + 3);
      expect(await c.s.tokens.activeAdminCount(T + 5)).toBe(1);
      expect(await codeOf(c.s.tokens.insert({ id: 't4', name: 'dup', role: 'read', createdAt: T, expiresAt: null }, 'h3'))).toBeDefined();
    });

    it("counts a token's open uploads against its limits, and forgets owners of finished uploads", async () => {
      const limits = { maxOpenUploads: 2, maxReservedBytes: 100 };
      const row = (name: string, size: number) => ({
        name,
        uploadId: `own-${name}`,
        size,
        contentType: 'image/png',
        sha256: null,
        fragmentSize: size,
        fragmentCount: 1,
        createdAt: T,
        expiresAt: T + 1000,
      });
      const first = await c.s.uploadOwners.insertOwnedUpload(row('o1', 60), 'tok', limits, T);
      expect(first.row).toMatchObject({ name: 'o1', state: 'uploading' });
      expect(await c.s.uploadOwners.insertOwnedUpload(row('o2', 50), 'tok', limits, T)).toEqual({ refused: { count: 1, bytes: 60 } });
      expect(await c.s.catalog.imageHoldingName('o2')).toBeUndefined();
      expect((await c.s.uploadOwners.insertOwnedUpload(row('o2', 40), 'tok', limits, T)).row?.name).toBe('o2');
      expect(await c.s.uploadOwners.insertOwnedUpload(row('o3', 1), 'tok', limits, T)).toEqual({ refused: { count: 2, bytes: 100 } });
      expect((await c.s.uploadOwners.insertOwnedUpload(row('o3', 1), 'other', limits, T)).row?.name).toBe('o3');
      // Expired uploads no longer count.
      expect((await c.s.uploadOwners.insertOwnedUpload(row('o4', 1), 'tok', limits, T + 1000)).row?.name).toBe('o4');
      expect(await codeOf(c.s.uploadOwners.insertOwnedUpload(row('o1', 1), 'new', limits, T))).toBe('IMAGE_ALREADY_EXISTS');
      await c.s.catalog.recordOnlyFragmentAndComplete(fragment(first.row!, 0, 'of'), ['a'], HASH, T);
      expect(await c.s.uploadOwners.sweepOwners()).toBe(1);
      expect(await c.s.uploadOwners.sweepOwners()).toBe(0);
    });

    it('keeps a key: the first one stored wins', async () => {
      const k1 = Buffer.from('first-key-bytes');
      expect(Buffer.compare(await c.s.authKeys.ensure('hmac', k1), k1)).toBe(0);
      expect(Buffer.compare(await c.s.authKeys.ensure('hmac', Buffer.from('second')), k1)).toBe(0);
    });
  });
}

function listingContract(c: Ctx) {
  describe('listing', () => {
    it('lists stored images in UTF-8 byte order, with prefix, cursor and first', async () => {
      const names = ['b', 'B', 'a_c', 'ab', '🌴', '\ufffd', 'é', 'z', '10', '9', ' lead', '~'];
      for (const n of names) await c.h.store(n);
      await c.h.upload('a-open');
      await c.h.store('\u0001rendition/hidden');
      const order = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      const list = async (q: { first: number; after?: string; prefix?: string }) => (await c.s.catalog.listImages(q)).map((i) => i.name);
      expect(await list({ first: 100 })).toEqual(order);
      expect(await list({ first: 3, after: 'B' })).toEqual(order.slice(order.indexOf('B') + 1, order.indexOf('B') + 4));
      expect(await list({ first: 100, prefix: 'a_' })).toEqual(['a_c']);
      expect(await list({ first: 100, prefix: 'a' })).toEqual(['a_c', 'ab']);
      expect(await list({ first: 100, prefix: 'a', after: 'a_c' })).toEqual(['ab']);
      expect(await list({ first: 100, prefix: 'a', after: '0' })).toEqual(['a_c', 'ab']);
      expect(await list({ first: 100, prefix: 'a', after: 'b' })).toEqual([]);
      expect(await list({ first: 100, after: '🌴' })).toEqual([]);
      expect(await list({ first: 1, after: '' })).toEqual([order[0]]);
      expect(await list({ first: 0 })).toEqual([]);
      expect(await list({ first: 100, prefix: '\u0001' })).toEqual([]);
      expect(await c.s.catalog.countImages()).toBe(names.length);
      expect(await c.s.catalog.countImages('a')).toBe(2);
      expect(await c.s.catalog.countImages('\u{10ffff}')).toBe(0);
      expect(await c.s.catalog.totals()).toEqual({ imageCount: names.length, storedBytes: 4 * names.length });
    });
  });
}

function racesContract(c: Ctx) {
  describe('races (two coordinators on the same data)', () => {
    it('a name raced from two coordinators is held by one upload; the other gets IMAGE_ALREADY_EXISTS', async () => {
      const other = await c.engine.openAnother();
      for (let round = 0; round < 5; round++) {
        const name = `race-${round}.png`;
        const codes = await Promise.all([codeOf(c.h.upload(name)), codeOf(c.h.upload(name, 10, 4, T + 1000, other))]);
        expect(codes.sort()).toEqual(['IMAGE_ALREADY_EXISTS', undefined]);
      }
      expect(await c.s.catalog.imageCount()).toBe(5);
    });

    it('two concurrent completes of one upload: one is done, the other finds it gone', async () => {
      const other = await c.engine.openAnother();
      for (let round = 0; round < 5; round++) {
        const u = await c.h.upload(`c-${round}.png`, 4);
        await c.s.catalog.recordFragment(fragment(u, 0, `c${round}`), ['a', 'b'], T + 1, T);
        const answers = await Promise.all([
          c.s.catalog.completeUpload(u.id, [`c${round}`], HASH, T),
          other.catalog.completeUpload(u.id, [`c${round}`], HASH, T),
        ]);
        expect(answers.sort()).toEqual(['done', 'gone']);
      }
    });

    it('two fragments of one index recorded at once: one is new, one replaces it, the loser queued for deletion', async () => {
      const other = await c.engine.openAnother();
      for (let round = 0; round < 5; round++) {
        const u = await c.h.upload(`f-${round}.png`, 4);
        const answers = await Promise.all([
          c.s.catalog.recordFragment(fragment(u, 0, `x${round}`), ['a', 'b'], T + 1, T),
          other.catalog.recordFragment(fragment(u, 0, `y${round}`), ['b', 'c'], T + 1, T),
        ]);
        expect(answers.sort()).toEqual(['new', 'replaced']);
        const kept = await c.s.catalog.fragments(u.id);
        expect(kept).toHaveLength(1);
        const loser = kept[0]!.id === `x${round}` ? `y${round}` : `x${round}`;
        expect(await c.s.catalog.replicasOf(loser)).toEqual([]);
        expect((await c.s.catalog.deletionTargetsOf(loser)).length).toBe(2);
      }
    });

    it('a delete racing a fragment and a completion leaves either a whole image or nothing', async () => {
      const other = await c.engine.openAnother();
      for (let round = 0; round < 5; round++) {
        const u = await c.h.upload(`d-${round}.png`, 4);
        const [completed, deleted] = await Promise.all([
          c.s.catalog.recordOnlyFragmentAndComplete(fragment(u, 0, `d${round}`), ['a', 'b'], HASH, T),
          other.catalog.deleteImage(u.id, T, 'upload-aborted'),
        ]);
        expect(deleted).toBe(true);
        expect(await c.s.catalog.imageById(u.id)).toBeUndefined();
        expect(await c.s.catalog.fragmentById(`d${round}`)).toBeUndefined();
        // Whatever was recorded before the delete is queued for deletion; nothing is left unaccounted.
        if (completed === 'done') expect((await c.s.catalog.deletionTargetsOf(`d${round}`)).sort()).toEqual(['a', 'b']);
        else expect(completed).toBe(false);
      }
    });

    it('two deletes of one image by name from two coordinators: one deletes it, the other finds nothing', async () => {
      const other = await c.engine.openAnother();
      for (let round = 0; round < 5; round++) {
        const image = await c.h.store(`twice-${round}.png`);
        const answers = await Promise.all([c.s.catalog.deleteStoredImage(image.name, T), other.catalog.deleteStoredImage(image.name, T)]);
        expect(answers.filter((a) => a !== undefined)).toEqual([{ imageKey: image.imageKey, holders: expect.any(Array) }]);
        expect(await c.s.catalog.imageById(image.id)).toBeUndefined();
      }
    });
  });
}
