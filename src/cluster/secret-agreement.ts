// Coordinators sharing one database must share one cluster secret too: the datanodes obey only
// requests signed with it, and a coordinator with another would have its writes refused (or,
// with --insecure beside secured ones, accept what they refuse). Each coordinator compares a
// fingerprint of its secret with the one the first coordinator stored, and refuses to start on
// a mismatch. The fingerprint is an HMAC keyed by the secret: the database never holds the secret.
import { createHmac } from 'node:crypto';
import type { AuthKeys } from '../metadata/auth-keys.ts';
import type { SqlQuery } from '../shared/sql-query.ts';

const KEY_NAME = 'cluster-secret-check';

/** What stands for the secret in the database: an HMAC of a fixed text under it; a fixed marker with --insecure. */
export function secretFingerprint(secret: string | undefined): Buffer {
  if (secret === undefined) return Buffer.from('insecure');
  return createHmac('sha256', secret).update('tessera cluster secret check v1').digest();
}

/** Throws, naming the flag, when another coordinator of this database runs with another secret. */
export async function agreeOnClusterSecret(authKeys: AuthKeys, secret: string | undefined): Promise<void> {
  const mine = secretFingerprint(secret);
  const stored = await authKeys.ensure(KEY_NAME, mine);
  if (stored.equals(mine)) return;
  const theirs = stored.equals(secretFingerprint(undefined)) ? 'run with --insecure' : 'use another cluster secret';
  const ours = secret === undefined ? 'this one runs with --insecure' : 'this one was given another --secret-file / TESSERA_CLUSTER_SECRET';
  throw new Error(
    `the coordinators of this database ${theirs}; ${ours}. Give every coordinator and datanode the same --secret-file ` +
      `(to change the secret of the whole cluster: stop every coordinator, DELETE FROM auth_keys WHERE name = '${KEY_NAME}', restart them with the new one)`,
  );
}

/** auth_keys through the shared database's SQL (PostgreSQL): the first value written stands. */
export function authKeysOn(sql: SqlQuery): AuthKeys {
  return {
    async ensure(name, fresh) {
      await sql('INSERT INTO auth_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, fresh]);
      const [row] = await sql('SELECT value FROM auth_keys WHERE name = $1', [name]);
      return row.value as Buffer;
    },
  };
}
