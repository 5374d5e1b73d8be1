// How the index's schema is brought up to date: a migration's version is the number its file name
// starts with (not its place in a listing), each runs once, and a gap, a duplicate, a misnamed
// file or an index newer than the migrations stops the start with an error naming the files.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { listMigrations, migrate, MIGRATIONS_DIR, openDatabase } from '../src/metadata/database.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-migrations-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes migration files, each creating a table named after its file. */
function write(...files: string[]) {
  for (const f of files) fs.writeFileSync(path.join(dir, f), `CREATE TABLE t_${f.replace(/\W/g, '_')} (x);`);
}
const tables = (db: Database.Database) =>
  (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);

describe('migration versions', () => {
  it('come from the file name: 10 runs after 9, not between 1 and 2 as a text sort would put it', () => {
    // Each migration records itself: the order they ran in is the order of their versions.
    for (let i = 1; i <= 10; i++)
      fs.writeFileSync(path.join(dir, `${i}_step.sql`), `CREATE TABLE IF NOT EXISTS log (v); INSERT INTO log VALUES (${i});`);
    expect(listMigrations(dir).map((m) => m.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const db = new Database(':memory:');
    migrate(db, dir);
    expect((db.prepare('SELECT v FROM log ORDER BY rowid').all() as { v: number }[]).map((r) => r.v)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect(db.pragma('user_version', { simple: true })).toBe(10);
  });

  it('run each migration once: an index at version 2 gets only the newer ones', () => {
    write('001_a.sql', '002_b.sql');
    const file = path.join(dir, 'index.sqlite');
    openDatabase(file, { migrationsDir: dir }).close();
    write('003_c.sql');
    const db = openDatabase(file, { migrationsDir: dir });
    expect(tables(db)).toEqual(['t_001_a_sql', 't_002_b_sql', 't_003_c_sql']);
    expect(db.pragma('user_version', { simple: true })).toBe(3);
    db.close();
  });

  it('refuse a gap, naming the file', () => {
    write('001_a.sql', '003_c.sql');
    expect(() => listMigrations(dir)).toThrow(/003_c\.sql .*version 3 where 2 comes next/);
    expect(() => openDatabase(':memory:', { migrationsDir: dir })).toThrow(/without gaps/);
  });

  it('refuse two files with one number, naming both', () => {
    write('001_a.sql', '002_b.sql', '002_other.sql');
    expect(() => listMigrations(dir)).toThrow(/002_b\.sql and 002_other\.sql .*same version 2/);
  });

  it('refuse a .sql file without a number, and a list that does not start at 1', () => {
    write('001_a.sql', 'extra.sql');
    expect(() => listMigrations(dir)).toThrow(/extra\.sql: not named NNN_name\.sql/);
    fs.rmSync(path.join(dir, 'extra.sql'));
    fs.rmSync(path.join(dir, '001_a.sql'));
    write('002_b.sql');
    expect(() => listMigrations(dir)).toThrow(/version 2 where 1 comes next/);
  });

  it('refuse an index newer than the migrations, and change nothing', () => {
    write('001_a.sql');
    const db = new Database(':memory:');
    db.pragma('user_version = 5');
    expect(() => migrate(db, dir)).toThrow(/schema version 5, newer than the last migration .* \(1\)/);
    expect(tables(db)).toEqual([]);
  });

  it('hold for the shipped migrations: numbered 1..n, and a new index is at version n', () => {
    const shipped = listMigrations(MIGRATIONS_DIR);
    expect(shipped.map((m) => m.version)).toEqual(shipped.map((_, i) => i + 1));
    const db = openDatabase(':memory:');
    expect(db.pragma('user_version', { simple: true })).toBe(shipped.length);
    db.close();
  });
});
