// fragmentData and Range requests look up only the fragments they need: the catalog's
// fragmentsInRange, against a real SQLite file holding an image of many fragments, answers exactly
// the fragments of an index range with their replicas, through the (image_id, idx) index.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/metadata/database.ts';
import { createCatalog, type Catalog } from '../src/metadata/catalog.ts';
import { datanodeRows } from '../src/metadata/datanodes.ts';

const T = 1_700_000_000_000;
const FRAGMENTS = 5000;
let dir: string;
let db: Db;
let catalog: Catalog;
let imageId: number;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-range-'));
  db = openDatabase(path.join(dir, 'index.sqlite'));
  catalog = createCatalog(db);
  const rows = datanodeRows(db);
  for (const id of ['a', 'b', 'c']) rows.insert(id, `http://127.0.0.1:1/${id}`, T);
  // Another image first, so the range query must also keep to its own image.
  for (const name of ['other.bin', 'big.bin']) {
    const up = await catalog.insertUpload({
      name,
      uploadId: `u-${name}`,
      size: FRAGMENTS * 4,
      contentType: 'application/octet-stream',
      sha256: null,
      fragmentSize: 4,
      fragmentCount: FRAGMENTS,
      createdAt: T,
      expiresAt: T + 1000,
    });
    // One transaction for the 5000 fragments (the catalog here is the synchronous SQLite engine).
    db.transaction(() => {
      for (let i = 0; i < FRAGMENTS; i++) {
        const nodes = i % 3 === 0 ? ['a', 'b'] : i % 3 === 1 ? ['b', 'c'] : ['a', 'c'];
        catalog.recordFragment(
          { id: `${name}-${i}`, imageId: up.id, imageKey: up.imageKey, idx: i, size: 4, sha256: String(i).padEnd(64, '0') },
          nodes,
          T + 2000,
          T,
        );
      }
    })();
    expect(
      await catalog.completeUpload(
        up.id,
        Array.from({ length: FRAGMENTS }, (_, i) => `${name}-${i}`),
        'ff'.repeat(32),
        T,
      ),
    ).toBe('done');
    imageId = up.id;
  }
});

afterEach(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('answers exactly the fragments of the index range, in order, with their replicas', async () => {
  const got = await catalog.fragmentsInRange(imageId, 4000, 4002);
  expect(got.map((f) => f.id)).toEqual(['big.bin-4000', 'big.bin-4001', 'big.bin-4002']);
  expect(got.map((f) => f.idx)).toEqual([4000, 4001, 4002]);
  expect(got.map((f) => [...f.replicas].sort())).toEqual([
    ['b', 'c'],
    ['a', 'c'],
    ['a', 'b'],
  ]);
  // The same rows as the whole-image listing has for those indexes.
  expect(got).toEqual(
    (await catalog.fragmentsWithReplicas(imageId)).slice(4000, 4003).map((f) => ({ ...f, replicas: expect.arrayContaining(f.replicas) })),
  );
  expect((await catalog.fragmentsInRange(imageId, 0, 0)).map((f) => f.id)).toEqual(['big.bin-0']);
  expect((await catalog.fragmentsInRange(imageId, FRAGMENTS - 1, FRAGMENTS + 10)).map((f) => f.id)).toEqual([`big.bin-${FRAGMENTS - 1}`]);
  expect(await catalog.fragmentsInRange(imageId, FRAGMENTS, FRAGMENTS + 10)).toEqual([]);
});

it('finds them through the (image_id, idx) index, not by scanning the image', () => {
  // SQLite's own account of how it runs the two statements fragmentsInRange prepares.
  const plans = [
    `SELECT id, image_id AS imageId, idx, size, sha256 FROM fragments WHERE image_id = ? AND idx BETWEEN ? AND ? ORDER BY idx`,
    `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId FROM fragments f JOIN replicas r ON r.fragment_id = f.id
       WHERE f.image_id = ? AND f.idx BETWEEN ? AND ?`,
  ].map((sql) =>
    db
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(imageId, 10, 12)
      .map((r) => (r as { detail: string }).detail)
      .join(' | '),
  );
  for (const plan of plans) expect(plan).toMatch(/USING (COVERING )?INDEX \S+ \(image_id=\? AND idx>\? AND idx<\?\)/);
});
