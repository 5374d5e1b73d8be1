// Brings a PostgreSQL index up to date from migrations/postgres/NNN_name.sql. Applied files are
// recorded by name in schema_migrations; all of it runs in one transaction under an advisory
// lock, so coordinators starting at once against a new database migrate it once (the others
// wait for the lock, then find every file recorded). Numbers order the files and may leave gaps
// (each helper of the schema keeps its own range); a recorded file this coordinator does not
// have means a newer Tessera wrote the database, and it stops instead of guessing.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './connection.ts';

export const POSTGRES_MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/postgres/', import.meta.url));

/** pg_advisory_xact_lock key of the migration ("tessera" in ASCII, as a bigint). */
const MIGRATION_LOCK = 0x746573736572n;

/** The .sql files of `dir` in the order their numbers give; a file not named NNN_name.sql or a repeated number is an error. */
export function listPostgresMigrations(dir: string): string[] {
  const files = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const m = /^(\d+)_[^/]+\.sql$/.exec(file);
      if (!m) throw new Error(`Migration ${path.join(dir, file)}: not named NNN_name.sql, so it has no place in the order.`);
      return { version: Number(m[1]), file };
    })
    .sort((a, b) => a.version - b.version);
  files.forEach((f, i) => {
    const previous = files[i - 1];
    if (previous?.version === f.version) throw new Error(`Migrations ${previous.file} and ${f.file} in ${dir} have the same number.`);
  });
  return files.map((f) => f.file);
}

/** Applies the migrations not yet recorded; answers the names of those it applied. */
export async function migratePostgres(sql: Sql, dir = POSTGRES_MIGRATIONS_DIR): Promise<string[]> {
  const files = listPostgresMigrations(dir);
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${String(MIGRATION_LOCK)}::bigint)`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (filename text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const applied = new Set((await tx<{ filename: string }[]>`SELECT filename FROM schema_migrations`).map((r) => r.filename));
    const unknown = [...applied].filter((f) => !files.includes(f));
    if (unknown.length > 0) {
      throw new Error(
        `The PostgreSQL index has migrations this coordinator does not know (${unknown.join(', ')}): it was written by a newer Tessera.`,
      );
    }
    const done: string[] = [];
    for (const file of files) {
      if (applied.has(file)) continue;
      await tx.unsafe(fs.readFileSync(path.join(dir, file), 'utf8'));
      await tx`INSERT INTO schema_migrations (filename) VALUES (${file})`;
      done.push(file);
    }
    return done;
  }) as Promise<string[]>;
}
