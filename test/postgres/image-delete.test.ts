// test/image-delete.test.ts with its coordinators on PostgreSQL (skipped with the reason when no server answers).
import { runOnPostgres } from '../support/on-postgres.ts';

await runOnPostgres('image-delete', () => import('../image-delete.test.ts'));
