// Issue 8: an index restored from an old backup (npm run index-backup, taken online) is re-checked
// against the datanodes' records with --recheck-index: images stored since come back, images
// deleted since stay deleted, a name deleted and reused since serves its new bytes.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { repoRoot } from './support/datanode-process.ts';
import { DELETE, dataOf, download, uploadChunked, uploadImage } from './support/images.ts';
import { until } from './support/poll.ts';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const names = async (c: TestCluster) =>
  ((await c.gql(`{ images(first: 100) { edges { node { name } } } }`)).images.edges as { node: { name: string } }[])
    .map((e) => e.node.name)
    .sort();

it('a restored backup of the index, re-checked, lists what the datanodes hold now', { timeout: 60_000 }, async () => {
  cluster = await startCluster();
  const c = cluster;
  const bytes = { a: randomBytes(200_000), b: randomBytes(5000), c: randomBytes(150_000), a2: randomBytes(70_000) };
  await uploadChunked(c, 'a.bin', bytes.a);
  await uploadImage(c, 'b.bin', bytes.b);

  // The online backup, by the documented command, while the coordinator serves.
  const coordinatorDir = c.coordinator.app.config.dataDir;
  const backup = path.join(c.dir, 'backup.sqlite');
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/index-backup.ts', '--data-dir', coordinatorDir, backup], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  expect(JSON.parse(run.stdout.trim())).toMatchObject({ event: 'backup' });
  // It never overwrites.
  expect(
    spawnSync(process.execPath, ['--import', 'tsx', 'src/index-backup.ts', '--data-dir', coordinatorDir, backup], { cwd: repoRoot }).status,
  ).not.toBe(0);

  // Since the backup: one image stored, one deleted, one name deleted and reused.
  await uploadChunked(c, 'c.bin', bytes.c);
  expect(dataOf(await c.gql.request(DELETE, { n: 'b.bin' })).deleteImage).toBe(true);
  expect(dataOf(await c.gql.request(DELETE, { n: 'a.bin' })).deleteImage).toBe(true);
  await uploadImage(c, 'a.bin', bytes.a2);
  await until(async () => (await c.app.catalog.pendingDeletionCount()) === 0, 'deletions done', 10_000);

  // Restore: stop, put the old copy in place, start with --recheck-index.
  await c.coordinator.stop();
  const index = path.join(coordinatorDir, 'index.sqlite');
  for (const f of [index, `${index}-wal`, `${index}-shm`]) fs.rmSync(f, { force: true });
  fs.copyFileSync(backup, index);
  await c.restartCoordinator({ recheckIndex: true });

  expect(await names(c)).toEqual(['a.bin', 'c.bin']);
  expect((await download(c, 'a.bin')).body.equals(bytes.a2)).toBe(true);
  expect((await download(c, 'c.bin')).body.equals(bytes.c)).toBe(true);
  expect((await download(c, 'b.bin')).res.status).toBe(404);

  // And it holds through a plain restart.
  await c.restartCoordinator({ recheckIndex: false });
  expect(await names(c)).toEqual(['a.bin', 'c.bin']);
});

it(
  'without --recheck-index a stale index is noticed by reconciliation and re-checked; nothing of a stored image is deleted meanwhile',
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster({ config: { reconcileIntervalSec: 1, orphanGraceSec: 0 } });
    const c = cluster;
    const old = randomBytes(100_000);
    await uploadChunked(c, 'old.bin', old);
    const coordinatorDir = c.coordinator.app.config.dataDir;
    const backup = path.join(c.dir, 'backup.sqlite');
    await c.coordinator.app.internals.db!.backup(backup); // a SQLite-only test: it restores an index file

    const fresh = randomBytes(300_000);
    await uploadChunked(c, 'new.bin', fresh);
    await c.coordinator.stop();
    const index = path.join(coordinatorDir, 'index.sqlite');
    for (const f of [index, `${index}-wal`, `${index}-shm`]) fs.rmSync(f, { force: true });
    fs.copyFileSync(backup, index);
    await c.restartCoordinator();

    // new.bin's files are orphans to the stale index (grace 0): its records keep them, and the
    // reconciler's check brings the image back.
    await until(async () => (await names(c)).includes('new.bin'), 'new.bin back in the index', 20_000);
    expect((await download(c, 'new.bin')).body.equals(fresh)).toBe(true);
    expect((await download(c, 'old.bin')).body.equals(old)).toBe(true);
  },
);
