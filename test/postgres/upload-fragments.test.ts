// test/upload-fragments.test.ts with its coordinators on PostgreSQL (skipped with the reason when no server answers).
import { runOnPostgres } from '../support/on-postgres.ts';

await runOnPostgres('upload-fragments', () => import('../upload-fragments.test.ts'));
