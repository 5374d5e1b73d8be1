// The metadata engines a shared test runs against: SQLite in a temp file, and PostgreSQL in a
// fresh database of the test server (skipped, with the reason in the name, when there is none).
// Each `open()` answers an empty store of its own (another file, or the database emptied), and
// `openAnother()` a second store on the same data: a second coordinator, for the races.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import { openPostgresMetadata, type PostgresMetadataStore } from '../../src/metadata/postgres/index.ts';
import { createTestDatabase, postgresAvailable, type TestDatabase } from './postgres.ts';
import { openSqliteMetadata, type MetadataStore } from '../../src/metadata/store.ts';

export type Store = MetadataStore;

export interface EngineUnderTest {
  name: 'SQLite' | 'PostgreSQL';
  /** Why it is skipped (no server), or undefined. */
  skip?: string;
  /** Called in beforeAll: makes the database. */
  setUp(): Promise<void>;
  /** A store on emptied data (called once per test). */
  open(): Promise<Store>;
  /** Another store on the same data as the last open() (another coordinator); SQLite answers the same file. */
  openAnother(): Promise<Store>;
  /** Closes every store it opened and removes the data (afterAll). */
  tearDown(): Promise<void>;
}

const quiet = pino({ level: 'silent' });

function sqliteEngine(): EngineUnderTest {
  let dir = '';
  let file = '';
  let n = 0;
  const open: Store[] = [];
  const track = (s: Store) => (open.push(s), s);
  return {
    name: 'SQLite',
    async setUp() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-contract-'));
    },
    async open() {
      file = path.join(dir, `index-${++n}.sqlite`);
      return track(openSqliteMetadata(file));
    },
    openAnother: async () => track(openSqliteMetadata(file)),
    async tearDown() {
      for (const s of open.splice(0)) await s.close().catch(() => {});
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Empties the metadata tables between tests (DELETE: on a few rows far cheaper than TRUNCATE's new files). */
async function emptyDatabase(store: PostgresMetadataStore): Promise<void> {
  for (const table of ['images', 'replica_deletions', 'write_intents', 'datanodes', 'tokens', 'auth_keys', 'cluster_identity'])
    await store.sql(`DELETE FROM ${table}`, []);
}

function postgresEngine(skip: string | undefined): EngineUnderTest {
  let db: TestDatabase | undefined;
  // One store for the tests, and one more for the races (a second coordinator): opened once.
  let main: PostgresMetadataStore | undefined;
  let other: PostgresMetadataStore | undefined;
  const openOne = (instanceId: string) => openPostgresMetadata(db!.url, quiet, { instanceId });
  return {
    name: 'PostgreSQL',
    skip,
    async setUp() {
      db = await createTestDatabase();
    },
    async open() {
      main ??= await openOne('test-main');
      await emptyDatabase(main);
      return main;
    },
    openAnother: async () => (other ??= await openOne('test-other')),
    async tearDown() {
      for (const s of [main, other]) await s?.close().catch(() => {});
      await db?.drop();
    },
  };
}

/** Both engines; PostgreSQL's `skip` says why when there is no server. */
export async function metadataEngines(): Promise<EngineUnderTest[]> {
  const pg = await postgresAvailable();
  return [sqliteEngine(), postgresEngine(pg.reason)];
}

/**
 * Describes `body` once per engine (PostgreSQL skipped, with the reason in the title, when there is
 * no server); each of its tests gets an emptied store (`store()`) with datanodes a, b and c registered.
 */
export async function describeOnEngines(title: string, body: (store: () => Store) => void): Promise<void> {
  for (const engine of await metadataEngines()) {
    describe.skipIf(engine.skip !== undefined)(`${title} on ${engine.name}${engine.skip ? ` (skipped: ${engine.skip})` : ''}`, () => {
      let s: Store;
      beforeAll(() => engine.setUp());
      afterAll(() => engine.tearDown());
      beforeEach(async () => {
        s = await engine.open();
        for (const id of ['a', 'b', 'c']) await s.datanodes.insert(id, `http://127.0.0.1:1/${id}`, 1_700_000_000_000);
      });
      body(() => s);
    });
  }
}
