// Tests reach behind the coordinator's services on purpose (to drive a loop, read the index):
// its `internals` merged with the services into one handle, so a test names what it uses.
import type { Coordinator, CoordinatorInternals } from '../../src/coordinator.ts';
import type { Db } from '../../src/metadata/database.ts';
import type { SqlQuery } from '../../src/shared/sql-query.ts';

/** `db` is the SQLite index; a test that reads it directly fails clearly on PostgreSQL. */
export type TestCoordinator = Coordinator &
  Omit<CoordinatorInternals, 'db'> & {
    readonly db: Db;
    /**
     * One statement on the index, whichever engine holds it (the tables are the same in both):
     * `?` placeholders, the rows answered (none for a statement that returns none). Counts come
     * back as numbers from SQLite and as strings from PostgreSQL (bigint): wrap them in Number().
     */
    indexSql(text: string, ...params: unknown[]): Promise<Record<string, unknown>[]>;
  };

export const withInternals = (app: Coordinator): TestCoordinator => {
  const view = { ...app, ...app.internals, indexSql: (text: string, ...params: unknown[]) => indexSql(app, text, params) };
  return Object.defineProperty(view, 'db', {
    get: () => {
      if (!app.internals.db) throw new Error('this test reads the SQLite index directly: it cannot run on PostgreSQL');
      return app.internals.db;
    },
  }) as TestCoordinator;
};

async function indexSql(app: Coordinator, text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  const { db, metadata } = app.internals;
  if (db) {
    const statement = db.prepare(text);
    if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
    statement.run(...params);
    return [];
  }
  const sql = (metadata as { sql?: SqlQuery }).sql;
  if (!sql) throw new Error(`no SQL on the ${metadata.engine} index`);
  let n = 0;
  return sql(
    text.replace(/\?/g, () => `$${++n}`),
    params,
  );
}
