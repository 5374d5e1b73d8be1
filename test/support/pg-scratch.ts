// Temporary (events helper): a fresh PostgreSQL database per test file, until
// test/support/postgres.ts (the pg engine's) lands; then this file goes.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export async function testDatabase(tag: string): Promise<{ url?: string; skipReason: string; drop(): Promise<void> }> {
  const admin = new URL(process.env.TESSERA_TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test');
  if (!admin.username) admin.username = os.userInfo().username;
  const name = `tessera_${tag.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    await client.end().catch(() => {});
    const skipReason = ` (skipped: no PostgreSQL at ${admin.host}: ${(err as Error).message})`;
    console.warn(skipReason);
    return { skipReason, drop: async () => {} };
  }
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    skipReason: '',
    async drop() {
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
