// test/auth-tokens.test.ts with its coordinators on PostgreSQL (skipped with the reason when no server answers).
import { runOnPostgres } from '../support/on-postgres.ts';

await runOnPostgres('auth-tokens', () => import('../auth-tokens.test.ts'));
