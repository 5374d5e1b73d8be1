// Which metadata engine the coordinators that tests start use: SQLite (the default), or with
// TESSERA_TEST_METADATA=postgres a fresh PostgreSQL database per coordinator data dir (the same
// one on every start of that coordinator, dropped after the test file), so the integration tests
// run unchanged on PostgreSQL. Asking for PostgreSQL with no server is an error, not a skip: the
// run asked for it (`npm run test:postgres`, vitest.postgres.config.ts, sets it; .ci/run starts
// the server first).
import { afterAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from './postgres.ts';

export const ENGINE_ENV = 'TESSERA_TEST_METADATA';

export const onPostgres = () => process.env[ENGINE_ENV] === 'postgres';

const byDataDir = new Map<string, Promise<TestDatabase>>();

/** The --metadata URL for the coordinator on `dataDir`, or undefined on SQLite. */
export async function metadataFor(dataDir: string): Promise<string | undefined> {
  if (!onPostgres()) return undefined;
  let db = byDataDir.get(dataDir);
  if (!db) byDataDir.set(dataDir, (db = createTestDatabase()));
  return (await db).url;
}

/** Drops the database made for `dataDir` (when its cluster closes). */
export async function dropMetadataFor(dataDir: string): Promise<void> {
  const db = byDataDir.get(dataDir);
  byDataDir.delete(dataDir);
  await (await db)?.drop();
}

// Whatever a test file did not close itself goes with the file.
afterAll(async () => {
  await Promise.all([...byDataDir.keys()].map((dir) => dropMetadataFor(dir).catch(() => {})));
});
