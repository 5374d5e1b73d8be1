// The tests' PostgreSQL helper: a fresh database per file, reachable, empty, and gone after drop.
import { describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { createTestDatabase, postgresAvailable, skipNote } from './support/postgres.ts';

const pg = await postgresAvailable();

describe.skipIf(!pg.adminUrl)(`test databases on PostgreSQL${skipNote(pg)}`, () => {
  it('creates an empty database of its own, and drop removes it even with a connection open', async () => {
    const db = await createTestDatabase();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql<{ db: string; tables: number }[]>`
        SELECT current_database() AS db, (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public') AS tables`;
      expect(row).toEqual({ db: db.name, tables: 0 });
      await db.drop();
      const admin = postgres(pg.adminUrl!, { max: 1, onnotice: () => {} });
      const left = await admin`SELECT 1 FROM pg_database WHERE datname = ${db.name}`;
      await admin.end();
      expect(left.length).toBe(0);
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
      await db.drop();
    }
  });
});
