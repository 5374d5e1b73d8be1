// The PostgreSQL engine's connection pool (postgres.js) and the one way it writes: a transaction
// that, inside a background pass holding a fencing token, first checks the token against the
// lease row (src/shared/fence.ts), and that is retried when PostgreSQL aborted it for a deadlock
// or a serialization failure (nothing of it was committed, so running it again is safe).
import postgres from 'postgres';
import { currentFence, FENCE_CHECK_SQL, FencedError } from '../../shared/fence.ts';
import { boundedPoolOptions } from './bounded.ts';

/**
 * bigint columns (ids, ms timestamps, byte counts) and numeric sums come back as JS numbers: every
 * value the index stores is below 2^53 (sizes, times in ms), as in the SQLite engine.
 */
const types = {
  int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
  numeric: { to: 1700, from: [1700], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
};

export type Sql = postgres.Sql<{ int8: number; numeric: number }>;
export type Tx = postgres.TransactionSql<{ int8: number; numeric: number }>;
/** The pool or a transaction: what a query step runs on. */
export type Q = postgres.ISql<{ int8: number; numeric: number }>;

export interface PoolOptions {
  /** Connections per coordinator (default 10, or `max` in the URL's query). */
  max?: number;
  /** Bound on waiting for the database (bounded.ts); undefined: no bound (the migration's lock wait). */
  timeoutMs?: number;
}

/**
 * Opens the pool. The URL is a libpq-style postgres:// URL; a URL without a user connects as the
 * OS user, as psql does. Connections are opened lazily, so a bad URL fails at the first query.
 * With a bound, the fenced transactions of background passes (index rebuild batches,
 * reconciliation, sweeps) run on a small pool of their own with a larger one
 * (backgroundTimeoutMs): their statements grow with the index, and an API call's bound would fail
 * them on every run once one took longer. closePool ends both.
 */
export function openPool(url: string, { max, timeoutMs }: PoolOptions = {}): Sql {
  const fromUrl = Number(new URL(url).searchParams.get('max') ?? NaN);
  const pool = poolOn(url, max ?? (Number.isInteger(fromUrl) && fromUrl > 0 ? fromUrl : 10), timeoutMs);
  if (timeoutMs !== undefined) backgroundPools.set(pool, poolOn(url, BACKGROUND_CONNECTIONS, backgroundTimeoutMs(timeoutMs)));
  return pool;
}

/** The bound of a background pass's fenced transactions: a minute, or 12 API bounds if more. */
export const backgroundTimeoutMs = (timeoutMs: number) => Math.max(60_000, 12 * timeoutMs);
const BACKGROUND_CONNECTIONS = 3;
const backgroundPools = new WeakMap<Sql, Sql>();

export async function closePool(sql: Sql, timeout: number): Promise<void> {
  await Promise.all([sql.end({ timeout }), backgroundPools.get(sql)?.end({ timeout })]);
}

function poolOn(url: string, max: number, timeoutMs: number | undefined): Sql {
  const bounded = timeoutMs === undefined ? undefined : boundedPoolOptions(timeoutMs);
  return postgres(url, {
    max,
    types,
    connect_timeout: 10,
    // Idle connections go after a minute: a quiet coordinator holds few of the server's slots.
    idle_timeout: 60,
    onnotice: () => {},
    ...bounded,
    connection: { application_name: 'tessera-coordinator', ...bounded?.connection },
  }) as unknown as Sql;
}

const RETRIED = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected
const ATTEMPTS = 5;

/** `fn` as one transaction: all of it or nothing. Fenced when run in a background pass. */
export async function transaction<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const fence = currentFence();
  const pool = fence === undefined ? sql : (backgroundPools.get(sql) ?? sql);
  for (let attempt = 1; ; attempt++) {
    try {
      return (await pool.begin(async (tx) => {
        if (fence !== undefined) {
          const held = await tx.unsafe(FENCE_CHECK_SQL, [fence]);
          if (held.length === 0) throw new FencedError(fence);
        }
        return fn(tx as Tx);
      })) as T;
    } catch (err) {
      if (attempt >= ATTEMPTS || !RETRIED.has(codeOf(err))) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt * Math.random()));
    }
  }
}

/** The SQLSTATE of a PostgreSQL error ('' for anything else). */
export const codeOf = (err: unknown): string => (err instanceof postgres.PostgresError ? err.code : '');
export const isUniqueViolation = (err: unknown) => codeOf(err) === '23505';
export const isForeignKeyViolation = (err: unknown) => codeOf(err) === '23503';

/** A one-statement write as a tagged template: see fencedWriter. */
export type Writer = <T extends readonly object[] = postgres.Row[]>(
  strings: TemplateStringsArray,
  ...values: readonly postgres.ParameterOrFragment<never>[]
) => Promise<postgres.RowList<T>>;

/**
 * One-statement writes on the pool: straight to the pool in API requests; inside a background
 * pass holding a fencing token, in a transaction that checks the token first (as transaction()).
 */
export function fencedWriter(sql: Sql): Writer {
  return <T extends readonly object[]>(strings: TemplateStringsArray, ...values: readonly postgres.ParameterOrFragment<never>[]) =>
    currentFence() === undefined
      ? (sql<T>(strings, ...values) as Promise<postgres.RowList<T>>)
      : transaction(sql, (tx) => tx<T>(strings, ...values) as Promise<postgres.RowList<T>>);
}

/** `fn` on the pool, or (inside a background pass holding a fencing token) in a fenced transaction. */
export const fenced = <T>(sql: Sql, fn: (q: Q) => Promise<T>): Promise<T> =>
  currentFence() === undefined ? fn(sql) : transaction(sql, fn);
