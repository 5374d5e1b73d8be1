// The PostgreSQL metadata engine (--metadata postgres://...): every table of the coordinator in
// one PostgreSQL database that any number of coordinators share. Loaded by store.ts only when a
// PostgreSQL URL is given, so a SQLite coordinator never loads the driver.
import type { Logger } from 'pino';
import type postgres from 'postgres';
import type { MetadataStore, OpenMetadataOptions } from '../store.ts';
import type { SqlQuery } from '../../shared/sql-query.ts';
import { closePool, openPool, type Sql } from './connection.ts';
import { migratePostgres } from './migrate.ts';
import { DEFAULT_METADATA_TIMEOUT_MS, reportingUnavailable } from './bounded.ts';
import { createPostgresCatalog, recordOnlyFragmentAndCompleteIn } from './catalog.ts';
import { clusterIdentityTable, datanodeTable, renditionRows, replicationTable } from './tables.ts';
import { authKeyTable, tokenTable, uploadOwnerTable } from './auth.ts';

/** The PostgreSQL store: a MetadataStore, and `sql` for the other tables kept in the same database (leader lease, membership). */
export interface PostgresMetadataStore extends MetadataStore {
  engine: 'postgres';
  sql: SqlQuery;
}

/** The URL as logs may show it: without its password. */
export function redactedUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** The store on an open pool (migrated): what openPostgresMetadata answers. */
export function postgresStoreOn(sql: Sql, location: string, opts: OpenMetadataOptions = {}): PostgresMetadataStore {
  return {
    engine: 'postgres' as const,
    location,
    sql: async (text, params) => [...(await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]))],
    // A database that does not answer is METADATA_UNAVAILABLE to every caller (bounded.ts).
    catalog: reportingUnavailable(createPostgresCatalog(sql, opts.instanceId ?? '')),
    datanodes: reportingUnavailable(datanodeTable(sql)),
    clusterIdentity: reportingUnavailable(clusterIdentityTable(sql)),
    replication: reportingUnavailable(replicationTable(sql)),
    renditions: reportingUnavailable(renditionRows(sql, recordOnlyFragmentAndCompleteIn)),
    tokens: reportingUnavailable(tokenTable(sql)),
    uploadOwners: reportingUnavailable(uploadOwnerTable(sql)),
    authKeys: reportingUnavailable(authKeyTable(sql)),
    close: () => closePool(sql, 5),
  };
}

/**
 * Connects, brings the schema up to date (once, whichever of several coordinators starting
 * together gets the migration lock) and answers the store. A server that does not answer fails
 * here, at start, with the URL (without its password) in the message. The migration runs on a
 * connection of its own without the query bound (`timeoutMs`, default 5 s): waiting for another
 * coordinator's migration is legitimate however long it takes.
 */
export async function openPostgresMetadata(url: string, log: Logger, opts: OpenMetadataOptions = {}): Promise<PostgresMetadataStore> {
  const location = redactedUrl(url);
  const migration = openPool(url, { max: 1 });
  try {
    const applied = await migratePostgres(migration);
    if (applied.length > 0) log.info({ metadata: location, applied }, 'PostgreSQL index migrated');
  } catch (err) {
    throw new Error(`Cannot open the PostgreSQL index at ${location}: ${(err as Error).message}`, { cause: err });
  } finally {
    await migration.end({ timeout: 1 }).catch(() => {});
  }
  return postgresStoreOn(openPool(url, { timeoutMs: opts.timeoutMs ?? DEFAULT_METADATA_TIMEOUT_MS }), location, opts);
}
