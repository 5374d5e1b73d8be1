// Opens the SQLite index (WAL) and brings it up to date from migrations/*.sql, tracked by
// PRAGMA user_version so each file runs exactly once, in order, in its own transaction.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/**
 * `normal` (the default): in WAL mode, durable across process crashes (kill -9); a power failure
 * or OS crash may lose the last transactions, which the datanodes' image records restore (the
 * index is re-checked after an unclean stop). `full`: every commit is synced before it returns,
 * at the cost of a sync per transaction on the coordinator's one thread.
 */
export type IndexSynchronous = 'normal' | 'full';

export function openDatabase(file: string, { migrationsDir = MIGRATIONS_DIR, synchronous = 'normal' }: { migrationsDir?: string; synchronous?: IndexSynchronous } = {}): Db {
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

export function migrate(db: Db, migrationsDir = MIGRATIONS_DIR): void {
  const files = fs.readdirSync(migrationsDir).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  const applied = db.pragma('user_version', { simple: true }) as number;
  files.forEach((file, i) => {
    const version = i + 1;
    if (version <= applied) return;
    const sql = fs.readFileSync(path.join(migrationsDir, file), 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    })();
  });
}
