// The one seam that chooses the metadata engine: every table the coordinator keeps, behind
// asynchronous interfaces, from SQLite (the default: a file in the data dir, no server) or
// PostgreSQL (a postgres:// URL, metadata/postgres/, loaded only when asked for).
//
// Each interface is the synchronous one of its module (catalog.ts, datanodes.ts, ...) with every
// method answering a promise of the same result (Async<T>): the SQLite engine is those modules
// wrapped, another engine implements the same names, arguments and results.
import type { Logger } from 'pino';
import { openDatabase, type Db, type IndexSynchronous } from './database.ts';
import { createCatalog, type Catalog } from './catalog.ts';
import { datanodeRows, type DatanodeRows } from './datanodes.ts';
import { clusterIdentityRow, type ClusterIdentityRow } from './cluster-identity.ts';
import { replicationQueries, type ReplicationQueries } from './replication.ts';
import { renditionTable, type RenditionTable } from './renditions.ts';
import { tokenRows, type TokenRows } from './tokens.ts';
import { uploadOwners, type UploadOwners } from './upload-owners.ts';
import { authKeys, type AuthKeys } from './auth-keys.ts';
import { asyncOf, type Async, type Sync } from './async.ts';
import { startCheckpointer, type Checkpointer } from './checkpointer.ts';

export type MetadataEngine = 'sqlite' | 'postgres';

/** The catalog without inTransaction (a caller that needs one transaction gets one method). */
export type AsyncCatalog = Async<Omit<Catalog, 'inTransaction'>>;
export type AsyncDatanodeRows = Async<DatanodeRows>;
export type AsyncClusterIdentityRow = Async<ClusterIdentityRow>;
export type AsyncReplicationQueries = Async<ReplicationQueries>;
export type AsyncRenditionTable = Async<RenditionTable>;

/** Every metadata table of the coordinator; each method answers a promise, each change is atomic. */
export interface MetadataStore {
  engine: MetadataEngine;
  /** Where it is, for logs: the SQLite file, or the PostgreSQL URL without its password. */
  location: string;
  catalog: AsyncCatalog;
  datanodes: AsyncDatanodeRows;
  clusterIdentity: AsyncClusterIdentityRow;
  replication: AsyncReplicationQueries;
  renditions: AsyncRenditionTable;
  tokens: TokenRows;
  uploadOwners: UploadOwners;
  authKeys: AuthKeys;
  close(): Promise<void>;
}

/** The SQLite store also hands out its database, for SQLite-only tests and tools. */
export interface SqliteMetadataStore extends MetadataStore {
  engine: 'sqlite';
  db: Db;
  /** With backgroundCheckpoints. */
  checkpointer?: Checkpointer;
}

export interface OpenMetadataOptions {
  /** SQLite: its synchronous mode (--index-synchronous). */
  synchronous?: IndexSynchronous;
  /** This coordinator's persistent id (PostgreSQL tags its write intents with it; SQLite has one coordinator). */
  instanceId?: string;
  /** PostgreSQL: how long a query may wait for the database before METADATA_UNAVAILABLE (--metadata-timeout). */
  timeoutMs?: number;
  /** SQLite: WAL checkpoints on a thread of their own, off the commits (checkpointer.ts); the coordinator's. */
  backgroundCheckpoints?: boolean;
  /** SQLite: where the checkpoint thread's failures are logged. */
  log?: Logger;
}

/** A --metadata value this coordinator cannot open (an engine not built in). */
export class MetadataConfigError extends Error {
  readonly code = 'METADATA_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'MetadataConfigError';
  }
}

export const isPostgresUrl = (location: string) => /^postgres(ql)?:\/\//i.test(location);

/** The SQLite engine on `file` (created and migrated when new). */
export function openSqliteMetadata(
  file: string,
  opts: { synchronous?: IndexSynchronous; migrationsDir?: string; backgroundCheckpoints?: boolean; log?: Logger } = {},
): SqliteMetadataStore {
  const db = openDatabase(file, opts);
  const store = sqliteMetadataOn(db, file);
  if (!opts.backgroundCheckpoints || file === ':memory:') return store;
  const checkpointer = startCheckpointer(db, { log: opts.log });
  return {
    ...store,
    checkpointer,
    async close() {
      await checkpointer.stop();
      await store.close();
    },
  };
}

const wrap = <T extends object>(sync: T) => asyncOf<Async<T>>(sync as Sync<Async<T>>);

/** The SQLite engine on an open database (tests that prepare one themselves). */
export function sqliteMetadataOn(db: Db, location = db.name): SqliteMetadataStore {
  const { inTransaction: _sqliteOnly, ...catalog } = createCatalog(db);
  return {
    engine: 'sqlite',
    db,
    location,
    catalog: wrap(catalog),
    datanodes: wrap(datanodeRows(db)),
    clusterIdentity: wrap(clusterIdentityRow(db)),
    replication: wrap(replicationQueries(db)),
    renditions: wrap(renditionTable(db)),
    tokens: tokenRows(db),
    uploadOwners: uploadOwners(db),
    authKeys: authKeys(db),
    close: async () => void db.close(),
  };
}

/**
 * The store `location` names: a postgres:// or postgresql:// URL opens PostgreSQL (the module
 * metadata/postgres/index.ts, exporting openPostgresMetadata), anything else is a SQLite file.
 */
export async function openMetadata(location: string, log: Logger, opts: OpenMetadataOptions = {}): Promise<MetadataStore> {
  if (!isPostgresUrl(location)) return openSqliteMetadata(location, { ...opts, log });
  type Engine = { openPostgresMetadata(url: string, log: Logger, opts?: OpenMetadataOptions): Promise<MetadataStore> };
  let engine: Engine;
  try {
    // Loaded only for PostgreSQL: a SQLite coordinator never loads its driver.
    engine = (await import(/* @vite-ignore */ POSTGRES_ENGINE)) as Engine;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes('postgres'))
      throw new MetadataConfigError(
        '--metadata names a PostgreSQL URL, but this Tessera has no PostgreSQL engine (src/metadata/postgres/index.ts); give a SQLite file.',
      );
    throw err;
  }
  return engine.openPostgresMetadata(location, log, opts);
}

// A variable, so type checking and bundling do not require the engine where it is not built in.
const POSTGRES_ENGINE = './postgres/index.ts';
