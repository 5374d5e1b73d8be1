// A real PostgreSQL server for tests: each test file gets a database of its own (random name,
// CREATE DATABASE on the admin URL, dropped with its connections after), so files run in
// parallel without seeing each other's rows. The admin URL is TESSERA_TEST_POSTGRES_URL or
// postgres://127.0.0.1:5432/test; a URL without a user tries the OS user, then `postgres`.
// When no server answers, callers get the reason and skip with it in the test's name:
//
//   const pg = await postgresAvailable();
//   describe.skipIf(!pg.adminUrl)(`... on PostgreSQL${skipNote(pg)}`, () => {
//     const db = useTestDatabase();          // beforeAll creates it, afterAll drops it
//     it('...', async () => { connect to db.url ... });
//   });
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import postgres from 'postgres';

export const DEFAULT_ADMIN_URL = 'postgres://127.0.0.1:5432/test';

/** Either a server that accepts us (with the URL that worked) or why there is none. */
export type PostgresProbe = { adminUrl: string; reason?: undefined } | { adminUrl?: undefined; reason: string };

export interface TestDatabase {
  /** The fresh database's URL (same server, user and options as the admin URL). */
  url: string;
  name: string;
  /** Drops it, terminating whatever connections are left. Safe to call twice. */
  drop(): Promise<void>;
}

const NAME_PREFIX = 'tessera_t_';

/** One short-lived admin connection for one statement or two. */
async function withAdmin<T>(adminUrl: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, connect_timeout: 5, idle_timeout: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

const withPath = (base: string, database: string) => {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
};

/** The admin URLs to try, in order: as given, or with the OS user then `postgres` when it names none. */
function candidates(base: string): string[] {
  const url = new URL(base);
  if (url.username) return [url.toString()];
  const users = [...new Set([safeUserName(), process.env.PGUSER, 'postgres'].filter((u): u is string => !!u))];
  return users.map((user) => {
    const u = new URL(base);
    u.username = user;
    return u.toString();
  });
}

function safeUserName(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}

const redacted = (url: string) => {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
};

let probe: Promise<PostgresProbe> | undefined;

/** Whether a server answers and lets us create databases (probed once per process). */
export function postgresAvailable(): Promise<PostgresProbe> {
  probe ??= (async (): Promise<PostgresProbe> => {
    const base = process.env.TESSERA_TEST_POSTGRES_URL || DEFAULT_ADMIN_URL;
    const reasons: string[] = [];
    for (const adminUrl of candidates(base)) {
      try {
        const [row] = await withAdmin(
          adminUrl,
          (sql) => sql<{ can: boolean }[]>`SELECT rolcreatedb OR rolsuper AS can FROM pg_roles WHERE rolname = current_user`,
        );
        if (row?.can) return { adminUrl };
        reasons.push(`${redacted(adminUrl)}: this user may not CREATE DATABASE`);
      } catch (err) {
        reasons.push(`${redacted(adminUrl)}: ${(err as Error).message}`);
      }
    }
    return { reason: `no PostgreSQL server for tests (set TESSERA_TEST_POSTGRES_URL): ${reasons.join('; ')}` };
  })();
  return probe;
}

/** ' (skipped: why)' when there is no server, else '': for describe names. */
export const skipNote = (p: PostgresProbe) => (p.adminUrl ? '' : ` (skipped: ${p.reason})`);

/** A fresh, empty database on the test server; throws (with the reason) when there is none. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const p = await postgresAvailable();
  if (!p.adminUrl) throw new Error(p.reason);
  const adminUrl = p.adminUrl;
  // The creating process's pid is in the name, so a later run can drop what a killed one left.
  const name = `${NAME_PREFIX}${process.pid}_${randomBytes(5).toString('hex')}`;
  await withAdmin(adminUrl, async (sql) => {
    await dropOrphans(sql, adminUrl);
    await sql.unsafe(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  });
  let dropped = false;
  return {
    url: withPath(adminUrl, name),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin(adminUrl, (sql) => dropDatabase(sql, name));
    },
  };
}

async function dropDatabase(sql: postgres.Sql, name: string): Promise<void> {
  try {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } catch (err) {
    // Before PostgreSQL 13 there is no FORCE: end the connections, then drop.
    if ((err as { code?: string }).code !== '42601') throw err;
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name} AND pid <> pg_backend_pid()`;
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  }
}

/** Test databases whose creating process is gone (killed before its afterAll): only on a server on this host. */
async function dropOrphans(sql: postgres.Sql, adminUrl: string): Promise<void> {
  const host = new URL(adminUrl).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(host)) return;
  const rows = await sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE datname LIKE ${`${NAME_PREFIX}%`}`;
  for (const { datname } of rows) {
    const pid = Number(/^tessera_t_(\d+)_/.exec(datname)?.[1]);
    if (!pid || processAlive(pid)) continue;
    await dropDatabase(sql, datname).catch(() => {});
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * In a describe block: a fresh database made before its tests and dropped after them. Its `url`
 * is read inside tests (it exists from beforeAll on).
 */
export function useTestDatabase(): { readonly url: string } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    get url() {
      if (!db) throw new Error('useTestDatabase: the database exists from beforeAll on');
      return db.url;
    },
  };
}
