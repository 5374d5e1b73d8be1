// test/cluster-end-to-end.test.ts with its coordinators on PostgreSQL (skipped with the reason when no server answers).
import { runOnPostgres } from '../support/on-postgres.ts';

await runOnPostgres('cluster-end-to-end', () => import('../cluster-end-to-end.test.ts'));
