// The SQLite index's WAL checkpoints run on a thread of their own (src/metadata/checkpointer.ts),
// not inside the coordinator's commits: the commits leave the WAL to the worker, which writes it
// back into the database file; nothing written is lost across a close and a reopen.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { openSqliteMetadata, type SqliteMetadataStore } from '../src/metadata/store.ts';
import { LARGE_WAL_PAGES, startCheckpointer } from '../src/metadata/checkpointer.ts';
import { openDatabase, type Db } from '../src/metadata/database.ts';
import { until } from './support/poll.ts';

let dir: string | undefined;
let store: SqliteMetadataStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `n` commits of a page each, or more. */
function writePages(db: Db, n: number) {
  db.exec('CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO scratch (body) VALUES (?)');
  for (let i = 0; i < n; i++) insert.run(Buffer.alloc(3000, i % 251));
}

it('leaves the checkpoints to the worker, which writes every committed page back into the database file', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tessera-checkpointer-'));
  const file = path.join(dir, 'index.sqlite');
  const db = openDatabase(file);
  // No periodic pass during the test: only the ones it asks for.
  const checkpointer = startCheckpointer(db, { everyMs: 3_600_000 });
  try {
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(LARGE_WAL_PAGES);
    await checkpointer.now(); // the worker's connection is open; the WAL is checkpointed
    writePages(db, 1500);
    const result = await checkpointer.now();
    // No commit checkpointed (SQLite's own threshold, 1000 pages, would have restarted the WAL): the worker did it all.
    expect(result.log).toBeGreaterThan(1500);
    expect(result.checkpointed).toBe(result.log);
  } finally {
    await checkpointer.stop();
    db.close();
  }
  store = openSqliteMetadata(file);
  expect(store.db.prepare('SELECT count(*) AS n FROM scratch').get()).toEqual({ n: 1500 });
});

it('runs its passes on its own while the store is open', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tessera-checkpointer-'));
  const file = path.join(dir, 'index.sqlite');
  store = openSqliteMetadata(file, { backgroundCheckpoints: true });
  expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(LARGE_WAL_PAGES);
  writePages(store.db, 20);
  // Only a checkpoint writes the pages into the database file, and no commit here runs one.
  await until(() => statSync(file).size >= 20 * 3000, 'the worker checkpointed the WAL');
});

it('ends the worker on close, and a store opened without it checkpoints as SQLite does', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tessera-checkpointer-'));
  const file = path.join(dir, 'index.sqlite');
  const withWorker = openSqliteMetadata(file, { backgroundCheckpoints: true });
  const { checkpointer } = withWorker;
  await withWorker.close();
  await expect(checkpointer!.now()).rejects.toThrow(/ended/);

  store = openSqliteMetadata(file);
  expect(store.checkpointer).toBeUndefined();
  expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
});

// Should the worker end without stop() (it exited, or was terminated), the coordinator's commits
// take the checkpoints back at SQLite's own threshold, and the operator is told.
it('gives the checkpoints back to the commits and warns when the worker ends unasked, and only then', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tessera-checkpointer-'));
  const db = openDatabase(path.join(dir, 'index.sqlite'));
  const warnings: string[] = [];
  const log = { warn: (_obj: unknown, msg: string) => void warnings.push(msg) } as unknown as Logger;
  try {
    const checkpointer = startCheckpointer(db, { log, everyMs: 3_600_000 });
    await checkpointer.now();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(LARGE_WAL_PAGES);
    const exited = new Promise((resolve) => checkpointer.thread.once('exit', resolve));
    await checkpointer.thread.terminate();
    await exited;
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(warnings).toEqual([expect.stringMatching(/checkpoint thread exited/)]);

    warnings.length = 0;
    const stopped = startCheckpointer(db, { log, everyMs: 3_600_000 });
    await stopped.now();
    await stopped.stop();
    expect(warnings).toEqual([]);
  } finally {
    db.close();
  }
});

it('closes in a process that has nothing else to wait for: the worker is unref’d, its stop is awaited to the end', async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tessera-checkpointer-'));
  // A process of its own: in one with no other handle, awaiting the unref'd worker's exit let
  // Node end the process (code 13, an unsettled await) before the index was closed.
  const script = path.join(dir, 'close.mjs');
  await writeFile(
    script,
    [
      `import { openSqliteMetadata } from ${JSON.stringify(new URL('../src/metadata/store.ts', import.meta.url).href)};`,
      `const store = openSqliteMetadata(${JSON.stringify(path.join(dir, 'index.sqlite'))}, { backgroundCheckpoints: true });`,
      `await store.close();`,
      `console.log('closed');`,
    ].join('\n'),
  );
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 });
  expect({ status: run.status, stdout: run.stdout.trim() }).toEqual({ status: 0, stdout: 'closed' });
});
