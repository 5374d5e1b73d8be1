// Unit tests of the index (an in-memory SQLite): name reservation, fragment replacement moving
// old replicas to the deletion queue, completion outcomes, deletion, listing in byte order.
import { beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS_DIR, openDatabase, type Db } from '../src/metadata/database.ts';
import { createCatalog, type Catalog, type ImageRow } from '../src/metadata/catalog.ts';
import { datanodeRows } from '../src/metadata/datanodes.ts';
import { codeOfThrown } from './support/errors.ts';
import { uploadRow } from './support/upload-rows.ts';

const T = 1_700_000_000_000;
let db: Db;
let catalog: Catalog;

beforeEach(() => {
  db = openDatabase(':memory:');
  catalog = createCatalog(db);
  const rows = datanodeRows(db);
  for (const id of ['a', 'b', 'c']) rows.insert(id, `http://127.0.0.1:1/${id}`, T);
});

let uploadSeq = 0;
function upload(name: string, size = 10, fragmentSize = 4, expiresAt = T + 1000) {
  uploadSeq += 1;
  return catalog.insertUpload(uploadRow(name, `u${uploadSeq}`, T, size, fragmentSize, expiresAt));
}

const fragment = (upload: Pick<ImageRow, 'id' | 'imageKey'>, idx: number, id: string) => ({
  id,
  imageId: upload.id,
  imageKey: upload.imageKey,
  idx,
  size: 4,
  sha256: id.padEnd(64, '0'),
});
const deletions = () =>
  catalog
    .dueDeletions(Number.MAX_SAFE_INTEGER, 1000)
    .map((d) => `${d.fragmentId}@${d.datanodeId}`)
    .sort();

describe('insertUpload', () => {
  it('reserves the name: a second upload of it is IMAGE_ALREADY_EXISTS, while open and once stored', () => {
    const first = upload('x.png');
    expect(first).toMatchObject({ name: 'x.png', state: 'uploading', uploadId: expect.any(String) });
    expect(codeOfThrown(() => upload('x.png'))).toBe('IMAGE_ALREADY_EXISTS');

    catalog.recordFragment(fragment(first, 0, 'f0'), ['a', 'b'], T + 2000, T);
    catalog.recordFragment(fragment(first, 1, 'f1'), ['a', 'b'], T + 2000, T);
    catalog.recordFragment(fragment(first, 2, 'f2'), ['a', 'b'], T + 2000, T);
    expect(catalog.completeUpload(first.id, ['f0', 'f1', 'f2'], 'ff'.repeat(32), T)).toBe('done');
    expect(codeOfThrown(() => upload('x.png'))).toBe('IMAGE_ALREADY_EXISTS');
  });

  it('compares names byte for byte', () => {
    upload('é');
    expect(codeOfThrown(() => upload('e\u0301'))).toBeUndefined();
    expect(codeOfThrown(() => upload('É'))).toBeUndefined();
  });

  it('frees the name once the image or upload is deleted', () => {
    const u = upload('again.png');
    expect(catalog.deleteImage(u.id, T)).toBe(true);
    expect(catalog.deleteImage(u.id, T)).toBe(false);
    expect(upload('again.png').name).toBe('again.png');
  });
});

describe('recordFragment', () => {
  it('records a fragment and its replicas, and keeps the upload alive', () => {
    const u = upload('a.png');
    expect(catalog.recordFragment(fragment(u, 1, 'f1'), ['a', 'c'], T + 5000, T)).toBe('new');
    expect(catalog.receivedIndexes(u.id)).toEqual([1]);
    expect(catalog.replicasOf('f1')).toEqual(['a', 'c']);
    expect(catalog.uploadById(u.uploadId!)!.expiresAt).toBe(T + 5000);
    expect(deletions()).toEqual([]);
  });

  it('replacing an index moves the old fragment replicas to the deletion queue', () => {
    const u = upload('a.png');
    catalog.recordFragment(fragment(u, 0, 'old'), ['a', 'b'], T + 1000, T);
    catalog.recordFragment(fragment(u, 1, 'other'), ['b', 'c'], T + 1000, T);
    catalog.addWriteIntents('new', ['b', 'c']);
    expect(catalog.recordFragment(fragment(u, 0, 'new'), ['b', 'c'], T + 2000, T + 1)).toBe('replaced');

    expect(catalog.fragments(u.id).map((f) => [f.idx, f.id])).toEqual([
      [0, 'new'],
      [1, 'other'],
    ]);
    expect(catalog.replicasOf('old')).toEqual([]);
    expect(catalog.replicasOf('new')).toEqual(['b', 'c']);
    // The old replicas are due for deletion; the new ones' write intents are cleared.
    expect(deletions()).toEqual(['old@a', 'old@b']);
    expect(catalog.dueDeletions(T + 1).map((d) => d.fragmentId)).toEqual(['old', 'old']);
    expect(catalog.pendingDeletionCount()).toBe(2);
    expect(catalog.accountsFor('new', 'b')).toBe(true);
  });

  it('refuses a fragment for an upload that is completed or gone, storing nothing', () => {
    const u = upload('a.png', 4);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    expect(catalog.completeUpload(u.id, ['f0'], 'aa'.repeat(32), T)).toBe('done');
    expect(catalog.recordFragment(fragment(u, 0, 'late'), ['a', 'b'], T + 1, T)).toBe(false);
    expect(catalog.fragments(u.id).map((f) => f.id)).toEqual(['f0']);

    const v = upload('b.png', 4);
    catalog.deleteImage(v.id, T);
    expect(catalog.recordFragment(fragment(v, 0, 'orphan'), ['a', 'b'], T + 1, T)).toBe(false);
  });

  it('refuses a fragment of an aborted upload whose id the next upload reuses (SQLite reuses the newest id)', () => {
    const aborted = upload('aborted.png', 4);
    catalog.deleteImage(aborted.id, T, 'upload-aborted');
    const next = upload('next.png', 4);
    expect(next.id).toBe(aborted.id);
    expect(catalog.recordFragment(fragment(aborted, 0, 'stray'), ['a', 'b'], T + 1, T)).toBe(false);
    expect(catalog.recordOnlyFragmentAndComplete(fragment(aborted, 0, 'stray1'), ['a', 'b'], 'aa'.repeat(32), T)).toBe(false);
    catalog.setMedia(aborted, { format: 'PNG', width: 3, height: 2, orientation: 1 }, 'image/png');
    expect(catalog.fragments(next.id)).toEqual([]);
    expect(catalog.imageById(next.id)).toEqual(next);
  });

  it('refuses a fragment of an upload that expired while it was being written', () => {
    const u = upload('late.png', 10, 4, T + 10);
    expect(catalog.recordFragment(fragment(u, 0, 'too-late'), ['a', 'b'], T + 1000, T + 10)).toBe(false);
    expect(catalog.fragments(u.id)).toEqual([]);
    expect(catalog.fragmentById('orphan')).toBeUndefined();
  });
});

describe('write intents', () => {
  it('are not due until released, and released ones are', () => {
    catalog.addWriteIntents('w', ['a', 'b']);
    expect(catalog.dueDeletions(Number.MAX_SAFE_INTEGER - 1)).toEqual([]);
    expect(catalog.pendingDeletionCount()).toBe(0);
    catalog.releaseWriteIntents('w', ['a'], T);
    expect(catalog.dueDeletions(T).map((d) => `${d.fragmentId}@${d.datanodeId}`)).toEqual(['w@a']);
    expect(catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 1, recorded: 0 });
    expect(deletions()).toEqual(['w@a', 'w@b']);
  });

  it('replace a queued deletion of the same file, which an acknowledgement then leaves in place', () => {
    catalog.doomOrphan('w', 'a', T);
    catalog.addWriteIntents('w', ['a']);
    expect(catalog.pendingDeletionCount()).toBe(0);
    expect(catalog.accountsFor('w', 'a')).toBe(true);
    expect(catalog.deletionTargetsOf('w')).toEqual(['a']);
    catalog.ackDeletion({ fragmentId: 'w', datanodeId: 'a', reason: 'orphan', imageKey: null });
    expect(catalog.accountsFor('w', 'a')).toBe(true);
    catalog.releaseWriteIntents('w', ['a'], T);
    expect(catalog.dueDeletions(T)).toEqual([
      { fragmentId: 'w', datanodeId: 'a', attempts: 0, reason: 'unrecorded-write', imageKey: null },
    ]);
  });

  it('end when the write is recorded: releasing them then queues nothing', () => {
    const u = upload('w.png', 4);
    catalog.addWriteIntents('f0', ['a', 'b']);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    catalog.releaseWriteIntents('f0', ['a', 'b'], T);
    expect(catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
    expect(catalog.pendingDeletionCount()).toBe(0);
    expect(catalog.deletionTargetsOf('f0')).toEqual([]);
  });

  it('go with their datanode when it leaves the index', () => {
    catalog.addWriteIntents('w', ['a']);
    catalog.doomOrphan('x', 'a', T);
    catalog.purgeDeletionsOn('a');
    expect(catalog.accountsFor('w', 'a')).toBe(false);
    expect(catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
    expect(catalog.pendingDeletionCount()).toBe(0);
  });
});

describe('an index written before write intents had a table of their own', () => {
  it('opens with its pending intents moved out of the deletion queue, and they behave as intents', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-catalog-'));
    try {
      const old = path.join(dir, 'migrations');
      fs.mkdirSync(old);
      for (const f of fs.readdirSync(MIGRATIONS_DIR).filter((f) => /^00[1-5]_.*\.sql$/.test(f)))
        fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(old, f));
      const file = path.join(dir, 'index.sqlite');
      const before = openDatabase(file, { migrationsDir: old });
      for (const id of ['a', 'b']) datanodeRows(before).insert(id, `http://127.0.0.1:1/${id}`, T);
      // The old schema's sentinel: a write in flight is a deletion that is never due.
      const insert = before.prepare(
        `INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key) VALUES (?, ?, ?, ?, ?, ?)`,
      );
      insert.run('w', 'a', Number.MAX_SAFE_INTEGER, 0, 'unrecorded-write', null);
      insert.run('w', 'b', Number.MAX_SAFE_INTEGER, 0, 'unrecorded-write', null);
      insert.run('gone', 'a', T, 2, 'orphan', null);
      before.close();

      const after = openDatabase(file);
      try {
        const migrated = createCatalog(after);
        expect(migrated.pendingDeletionCount()).toBe(1);
        expect(migrated.dueDeletions(Number.MAX_SAFE_INTEGER).map((d) => `${d.fragmentId}@${d.datanodeId}:${d.attempts}`)).toEqual([
          'gone@a:2',
        ]);
        expect(migrated.accountsFor('w', 'a')).toBe(true);
        expect(migrated.deletionTargetsOf('w').sort()).toEqual(['a', 'b']);
        migrated.ackDeletion({ fragmentId: 'w', datanodeId: 'a', reason: 'unrecorded-write', imageKey: null }); // an intent is not a deletion to acknowledge
        expect(migrated.accountsFor('w', 'a')).toBe(true);
        // What a coordinator does at start: the writes the last run left in flight become due deletions.
        expect(migrated.releaseAllWriteIntents(T)).toEqual({ deletions: 2, recorded: 0 });
        expect(
          migrated
            .dueDeletions(T)
            .map((d) => `${d.fragmentId}@${d.datanodeId}:${d.reason}`)
            .sort(),
        ).toEqual(['gone@a:orphan', 'w@a:unrecorded-write', 'w@b:unrecorded-write']);
      } finally {
        after.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('completeUpload', () => {
  it("answers 'done' and makes the image visible with its hash", () => {
    const u = upload('done.png', 8);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    catalog.recordFragment(fragment(u, 1, 'f1'), ['b', 'c'], T + 1, T);
    expect(catalog.imageByName('done.png')).toBeUndefined();
    expect(catalog.completeUpload(u.id, ['f0', 'f1'], 'ab'.repeat(32), T + 7)).toBe('done');
    expect(catalog.imageByName('done.png')).toMatchObject({
      state: 'stored',
      sha256: 'ab'.repeat(32),
      uploadId: null,
      expiresAt: null,
      createdAt: T + 7,
    });
    expect(catalog.uploadById(u.uploadId!)).toBeUndefined();
    expect(catalog.totals()).toEqual({ imageCount: 1, storedBytes: 8 });
  });

  it("answers 'changed' when a fragment was replaced after the set was read, and changes nothing", () => {
    const u = upload('changed.png', 8);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    catalog.recordFragment(fragment(u, 1, 'f1'), ['a', 'b'], T + 1, T);
    const seen = catalog.fragments(u.id).map((f) => f.id);
    catalog.recordFragment(fragment(u, 1, 'f1b'), ['a', 'c'], T + 1, T);
    expect(catalog.completeUpload(u.id, seen, 'ab'.repeat(32), T)).toBe('changed');
    expect(catalog.uploadById(u.uploadId!)).toMatchObject({ state: 'uploading' });
    expect(catalog.imageByName('changed.png')).toBeUndefined();
    expect(catalog.completeUpload(u.id, ['f0'], 'ab'.repeat(32), T)).toBe('changed'); // a fragment short
    expect(catalog.completeUpload(u.id, ['f0', 'f1b'], 'ab'.repeat(32), T)).toBe('done');
  });

  it("answers 'gone' for an aborted, expired-and-swept or already completed upload", () => {
    const u = upload('gone.png', 4);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    expect(catalog.completeUpload(u.id, ['f0'], 'ab'.repeat(32), T)).toBe('done');
    expect(catalog.completeUpload(u.id, ['f0'], 'ab'.repeat(32), T)).toBe('gone');
    const v = upload('aborted.png', 4);
    catalog.deleteImage(v.id, T);
    expect(catalog.completeUpload(v.id, [], 'ab'.repeat(32), T)).toBe('gone');
    expect(catalog.completeUpload(999_999, [], 'ab'.repeat(32), T)).toBe('gone');
  });
});

describe('deleteImage', () => {
  it('removes the image, its fragments and replicas in one step and queues every replica file', () => {
    const u = upload('del.png', 8);
    catalog.recordFragment(fragment(u, 0, 'f0'), ['a', 'b'], T + 1, T);
    catalog.recordFragment(fragment(u, 1, 'f1'), ['b', 'c'], T + 1, T);
    catalog.completeUpload(u.id, ['f0', 'f1'], 'ab'.repeat(32), T);
    expect(catalog.deleteImage(u.id, T + 3)).toBe(true);
    expect(catalog.imageByName('del.png')).toBeUndefined();
    expect(catalog.fragments(u.id)).toEqual([]);
    expect(catalog.replicasOf('f0')).toEqual([]);
    expect(deletions()).toEqual(['f0@a', 'f0@b', 'f1@b', 'f1@c']);
    expect(catalog.totals()).toEqual({ imageCount: 0, storedBytes: 0 });
    for (const d of catalog.dueDeletions(T + 3)) catalog.ackDeletion(d);
    expect(catalog.pendingDeletionCount()).toBe(0);
  });
});

describe('expiredUploads', () => {
  it('lists open uploads whose expiry has passed, not stored images', () => {
    upload('old.png', 4, 4, T - 1);
    upload('young.png', 4, 4, T + 1);
    upload('just-now.png', 4, 4, T);
    const stored = upload('stored.png', 4, 4, T + 1);
    catalog.recordFragment(fragment(stored, 0, 's0'), ['a', 'b'], T + 1, T);
    expect(catalog.completeUpload(stored.id, ['s0'], 'ab'.repeat(32), T)).toBe('done');
    expect(
      catalog
        .expiredUploads(T)
        .map((x) => x.name)
        .sort(),
    ).toEqual(['just-now.png', 'old.png']);
  });
});

describe('listImages / countImages', () => {
  const store = (name: string) => {
    const u = upload(name, 4);
    catalog.recordFragment(fragment(u, 0, `f-${Buffer.from(name).toString('hex')}`), ['a', 'b'], T + 1, T);
    expect(
      catalog.completeUpload(
        u.id,
        catalog.fragments(u.id).map((f) => f.id),
        'ab'.repeat(32),
        T,
      ),
    ).toBe('done');
  };

  it('lists stored images in UTF-8 byte order, with prefix and cursor', () => {
    const names = ['b', 'B', 'a_c', 'ab', '🌴', '\ufffd', 'é', 'z', '10', '9'];
    names.forEach(store);
    upload('a-open');
    const order = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(catalog.listImages({ first: 100 }).map((i) => i.name)).toEqual(order);
    expect(catalog.listImages({ first: 3, after: 'B' }).map((i) => i.name)).toEqual(
      order.slice(order.indexOf('B') + 1, order.indexOf('B') + 4),
    );
    expect(catalog.listImages({ first: 100, prefix: 'a_' }).map((i) => i.name)).toEqual(['a_c']);
    expect(catalog.countImages()).toBe(names.length);
    expect(catalog.countImages('a')).toBe(2);
    expect(catalog.countImages('\u{10ffff}')).toBe(0);
  });
});
