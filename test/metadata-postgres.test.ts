// What only the PostgreSQL engine has (the shared contract is metadata-contract.test.ts): its
// migrations run once when several coordinators start together, a newer database is refused,
// an unreachable server fails at open with the URL (no password), and writes made in a background
// pass are fenced by the leader lease's token.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { openPostgresMetadata, type PostgresMetadataStore } from '../src/metadata/postgres/index.ts';
import { openPool } from '../src/metadata/postgres/connection.ts';
import { listPostgresMigrations, migratePostgres, POSTGRES_MIGRATIONS_DIR } from '../src/metadata/postgres/migrate.ts';
import { withFence } from '../src/shared/fence.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';
import { uploadRow } from './support/upload-rows.ts';

const pg = await postgresAvailable();
const quiet = pino({ level: 'silent' });
const T = 1_700_000_000_000;

describe.skipIf(!pg.adminUrl)(`the PostgreSQL metadata engine${skipNote(pg)}`, () => {
  const db = useTestDatabase();

  it('migrates once when several coordinators open a new database at the same time', async () => {
    const stores = await Promise.all([1, 2, 3, 4].map((i) => openPostgresMetadata(db.url, quiet, { instanceId: `c${i}` })));
    try {
      const rows = (await stores[0]!.sql('SELECT filename FROM schema_migrations ORDER BY filename', [])).map((r) => r.filename);
      expect(rows).toEqual(listPostgresMigrations(POSTGRES_MIGRATIONS_DIR));
      // Each works on the one schema.
      await stores[1]!.datanodes.insert('a', 'http://127.0.0.1:1/a', T);
      expect((await stores[3]!.datanodes.all()).map((d) => d.id)).toEqual(['a']);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('refuses a database migrated by a newer Tessera, and answers an unreachable server at open', async () => {
    const sql = openPool(db.url);
    try {
      await migratePostgres(sql);
      await sql`INSERT INTO schema_migrations (filename) VALUES ('999_from_the_future.sql')`;
      await expect(openPostgresMetadata(db.url, quiet)).rejects.toThrow(/999_from_the_future\.sql.*newer Tessera/);
      await sql`DELETE FROM schema_migrations WHERE filename = '999_from_the_future.sql'`;
    } finally {
      await sql.end();
    }
    await expect(openPostgresMetadata('postgres://someone:secret-pw@127.0.0.1:1/nothing', quiet)).rejects.toThrow(
      /Cannot open the PostgreSQL index at postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nothing/,
    );
  });

  it('a misnamed or doubly numbered migration stops the migrator', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pg-migrations-'));
    try {
      fs.writeFileSync(path.join(dir, '001_a.sql'), '');
      fs.writeFileSync(path.join(dir, '010_b.sql'), '');
      expect(listPostgresMigrations(dir)).toEqual(['001_a.sql', '010_b.sql']);
      fs.writeFileSync(path.join(dir, '010_c.sql'), '');
      expect(() => listPostgresMigrations(dir)).toThrow(/same number/);
      fs.rmSync(path.join(dir, '010_c.sql'));
      fs.writeFileSync(path.join(dir, 'extra.sql'), '');
      expect(() => listPostgresMigrations(dir)).toThrow(/not named NNN_name\.sql/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a coordinator releases its own write intents only: another's on the same file keeps it covered, its deletion unqueued", async () => {
    const [a, b] = await Promise.all(['coord-a', 'coord-b'].map((instanceId) => openPostgresMetadata(db.url, quiet, { instanceId })));
    try {
      await a!.datanodes.insert('own-dn', 'http://127.0.0.1:1/own', T);
      const owners = async (f: string) =>
        (await a!.sql('SELECT coordinator_id AS c FROM write_intents WHERE fragment_id = $1 ORDER BY c', [f])).map((r) => r.c);
      const queued = async () => (await a!.catalog.dueDeletions(Number.MAX_SAFE_INTEGER, 100)).map((d) => d.fragmentId).sort();
      // A (a stale leader) and B (the newer one) both write the copy on own-dn; A's recording is
      // refused, and A releases its intent: B's stays, and nothing is queued for the file B writes.
      await a!.catalog.addWriteIntents('own-f', ['own-dn']);
      await b!.catalog.addWriteIntents('own-f', ['own-dn']);
      expect(await owners('own-f')).toEqual(['coord-a', 'coord-b']);
      await a!.catalog.releaseWriteIntents('own-f', ['own-dn'], T);
      expect(await owners('own-f')).toEqual(['coord-b']);
      expect(await queued()).toEqual([]);
      // So do A's restart and the leader's sweep of A once departed.
      await a!.catalog.addWriteIntents('own-f', ['own-dn']);
      expect(await a!.catalog.releaseAllWriteIntents(T)).toEqual({ deletions: 0, recorded: 0 });
      await a!.catalog.addWriteIntents('own-f', ['own-dn']);
      expect(await b!.catalog.releaseWriteIntentsOf(['coord-a'], T)).toBe(1);
      expect(await owners('own-f')).toEqual(['coord-b']);
      expect(await queued()).toEqual([]);
      // B's release, nobody else writing the file, queues its deletion; so does a sweep of both.
      await b!.catalog.releaseWriteIntents('own-f', ['own-dn'], T);
      expect(await queued()).toEqual(['own-f']);
      for (const s of [a!, b!]) await s.catalog.addWriteIntents('own-g', ['own-dn']);
      expect(await b!.catalog.releaseWriteIntentsOf(['coord-a', 'coord-b'], T)).toBe(2);
      expect(await queued()).toEqual(['own-f', 'own-g']);
      // Recording the copy ends every intent on it, whoever made it.
      const u = await a!.catalog.insertUpload(uploadRow('own.png', 'own-upload', T, 4, 4));
      for (const s of [a!, b!]) await s.catalog.addWriteIntents('own-h', ['own-dn']);
      const row = { id: 'own-h', imageId: u.id, idx: 0, size: 4, sha256: 'ab'.repeat(32), imageKey: u.imageKey };
      expect(await b!.catalog.recordFragment(row, ['own-dn'], T + 1000, T)).toBe('new');
      expect(await owners('own-h')).toEqual([]);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('two coordinators releasing their intents on one file at once leave its deletion queued, not an orphan', async () => {
    const [a, b] = await Promise.all(['race-a', 'race-b'].map((instanceId) => openPostgresMetadata(db.url, quiet, { instanceId })));
    try {
      await a!.datanodes.insert('race-dn', 'http://127.0.0.1:1/race', T);
      const ids = Array.from({ length: 40 }, (_, i) => `race-f${i}`);
      // Each file: both wrote it, both writes failed, both release at the same moment. Without
      // the lock each saw the other's intent as covering the file (most rounds queued nothing).
      for (const f of ids) {
        for (const s of [a!, b!]) await s.catalog.addWriteIntents(f, ['race-dn']);
        await Promise.all([a!, b!].map((s) => s.catalog.releaseWriteIntents(f, ['race-dn'], T)));
      }
      const queued = (await a!.catalog.dueDeletions(Number.MAX_SAFE_INTEGER, 1000)).map((d) => d.fragmentId);
      expect(ids.filter((f) => !queued.includes(f))).toEqual([]);
      expect(await a!.sql(`SELECT fragment_id FROM write_intents WHERE fragment_id LIKE 'race-%'`, [])).toEqual([]);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('fences the writes of a background pass: a stale token changes nothing, the current one writes', async () => {
    const store: PostgresMetadataStore = await openPostgresMetadata(db.url, quiet);
    try {
      await store.sql(`UPDATE leader_lease SET token = 7 WHERE name = 'background'`, []);
      await store.datanodes.insert('fence-dn', 'http://127.0.0.1:1/fence', T);
      const stale = () => withFence('6', () => store.catalog.doomOrphan('stale', 'fence-dn', T));
      await expect(stale()).rejects.toMatchObject({ code: 'FENCED' });
      await expect(withFence('6', () => store.catalog.moveReplicas('none', [], [], T))).rejects.toMatchObject({ code: 'FENCED' });
      await expect(
        withFence('6', () => store.catalog.ackDeletions([{ fragmentId: 'x', datanodeId: 'fence-dn', reason: 'orphan', imageKey: null }])),
      ).rejects.toMatchObject({
        code: 'FENCED',
      });
      expect(await store.catalog.accountsFor('stale', 'fence-dn')).toBe(false);
      await withFence('7', () => store.catalog.doomOrphan('current', 'fence-dn', T));
      expect(await store.catalog.accountsFor('current', 'fence-dn')).toBe(true);
      // API requests carry no token: not fenced.
      await store.catalog.doomOrphan('api', 'fence-dn', T);
      expect(await store.catalog.accountsFor('api', 'fence-dn')).toBe(true);
    } finally {
      await store.close();
    }
  });
});
