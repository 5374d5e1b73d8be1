// Runs an integration test file again with its coordinators on PostgreSQL (test/postgres/*):
// the file is imported with TESSERA_TEST_METADATA=postgres, so test/support gives each
// coordinator a fresh database. With no server, one skipped test says why.
import { describe, it } from 'vitest';
import { postgresAvailable, skipNote } from './postgres.ts';
import { ENGINE_ENV } from './test-metadata.ts';

export async function runOnPostgres(title: string, load: () => Promise<unknown>): Promise<void> {
  const pg = await postgresAvailable();
  if (!pg.adminUrl) {
    describe.skip(`${title} on PostgreSQL${skipNote(pg)}`, () => {
      it('runs the SQLite suite with its coordinators on PostgreSQL', () => {});
    });
    return;
  }
  process.env[ENGINE_ENV] = 'postgres';
  await load();
}
