// Tests reach behind the coordinator's services on purpose (to drive a loop, read the index):
// its `internals` merged with the services into one handle, so a test names what it uses.
import type { Coordinator, CoordinatorInternals } from '../../src/coordinator.ts';
import type { Db } from '../../src/metadata/database.ts';

/** `db` is the SQLite index; a test that reads it directly fails clearly on PostgreSQL. */
export type TestCoordinator = Coordinator & Omit<CoordinatorInternals, 'db'> & { readonly db: Db };

export const withInternals = (app: Coordinator): TestCoordinator => {
  const view = { ...app, ...app.internals };
  return Object.defineProperty(view, 'db', {
    get: () => {
      if (!app.internals.db) throw new Error('this test reads the SQLite index directly: it cannot run on PostgreSQL');
      return app.internals.db;
    },
  }) as TestCoordinator;
};
