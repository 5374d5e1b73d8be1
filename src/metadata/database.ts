// Opens the SQLite index (WAL) and brings it up to date from migrations/NNN_name.sql. A file's
// version is the number its name starts with; PRAGMA user_version records the last one applied,
// so each file runs exactly once, in version order, in its own transaction.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/sqlite/', import.meta.url));

/**
 * `normal` (the default): in WAL mode, durable across process crashes (kill -9); a power failure
 * or OS crash may lose the last transactions, which the datanodes' image records restore (the
 * index is re-checked after an unclean stop). `full`: every commit is synced before it returns,
 * at the cost of a sync per transaction on the coordinator's one thread.
 */
export type IndexSynchronous = 'normal' | 'full';

export function openDatabase(
  file: string,
  { migrationsDir = MIGRATIONS_DIR, synchronous = 'normal' }: { migrationsDir?: string; synchronous?: IndexSynchronous } = {},
): Db {
  if (file !== ':memory:') keepPrivate(file);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, migrationsDir);
  return db;
}

/**
 * The index names every image: only the coordinator's user may read it. Its folder is 0700 and
 * the file 0600 before SQLite opens it (SQLite gives its -wal and -shm files the main file's mode);
 * existing ones are tightened too.
 */
function keepPrivate(file: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

export interface Migration {
  version: number;
  file: string;
}

/**
 * The migrations in `dir` in version order, each version the number its file name starts with.
 * The versions must run 1, 2, 3... : a gap, a duplicate or a .sql file not named NNN_name.sql is
 * an error naming the files, so a misnumbered migration stops the coordinator at start instead of
 * running out of order.
 */
export function listMigrations(dir: string): Migration[] {
  const migrations = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const m = /^(\d+)_[^/]+\.sql$/.exec(file);
      if (!m) throw new Error(`Migration ${path.join(dir, file)}: not named NNN_name.sql, so it has no version.`);
      return { version: Number(m[1]), file };
    })
    .sort((a, b) => a.version - b.version || a.file.localeCompare(b.file));
  migrations.forEach((migration, i) => {
    const previous = migrations[i - 1];
    if (previous?.version === migration.version)
      throw new Error(`Migrations ${previous.file} and ${migration.file} in ${dir} have the same version ${migration.version}.`);
    if (migration.version !== i + 1)
      throw new Error(
        `Migration ${migration.file} in ${dir} has version ${migration.version} where ${i + 1} comes next: versions run 1, 2, 3... without gaps.`,
      );
  });
  return migrations;
}

export function migrate(db: Db, migrationsDir = MIGRATIONS_DIR): void {
  const migrations = listMigrations(migrationsDir);
  const applied = db.pragma('user_version', { simple: true }) as number;
  if (applied > migrations.length) {
    throw new Error(
      `The index is at schema version ${applied}, newer than the last migration this coordinator has (${migrations.length}): it was written by a newer Tessera.`,
    );
  }
  for (const { version, file } of migrations) {
    if (version <= applied) continue;
    const sql = fs.readFileSync(path.join(migrationsDir, file), 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    })();
  }
}
