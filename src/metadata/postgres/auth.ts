// The auth tables on PostgreSQL: client tokens, which token opened which upload (for the
// per-token quotas) and the coordinators' own keys, as tokens.ts, upload-owners.ts and
// auth-keys.ts are for SQLite.
import type { TokenRow, TokenRows } from '../tokens.ts';
import type { UploadOwners } from '../upload-owners.ts';
import type { AuthKeys } from '../auth-keys.ts';
import { transaction, type Sql } from './connection.ts';
import { insertUploadOn } from './images.ts';

const TOKEN_COLUMNS = 'id, name, role, created_at AS "createdAt", expires_at AS "expiresAt", revoked_at AS "revokedAt"';

export function tokenTable(sql: Sql): TokenRows {
  const cols = sql.unsafe(TOKEN_COLUMNS);
  return {
    byHash: async (hash) => (await sql<TokenRow[]>`SELECT ${cols} FROM tokens WHERE hash = ${hash}`)[0],
    byId: async (id) => (await sql<TokenRow[]>`SELECT ${cols} FROM tokens WHERE id = ${id}`)[0],
    all: async () => [...(await sql<TokenRow[]>`SELECT ${cols} FROM tokens ORDER BY created_at, id COLLATE "C"`)],
    async insert(row, hash) {
      await sql`INSERT INTO tokens (id, name, role, hash, created_at, expires_at)
        VALUES (${row.id}, ${row.name}, ${row.role}, ${hash}, ${row.createdAt}, ${row.expiresAt})`;
    },
    revoke: async (id, now) => (await sql`UPDATE tokens SET revoked_at = ${now} WHERE id = ${id} AND revoked_at IS NULL`).count > 0,
    activeAdminCount: async (now) =>
      (
        await sql<{ n: number }[]>`SELECT count(*) AS n FROM tokens
          WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ${now})`
      )[0]!.n,
  };
}

export function uploadOwnerTable(sql: Sql): UploadOwners {
  return {
    insertOwnedUpload: (row, tokenId, limits, now) =>
      transaction(sql, async (tx) => {
        // One token's uploads are counted and reserved one at a time across coordinators: two
        // begun at once through two of them cannot both take the token's last slot.
        await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`upload-owner:${tokenId}`}, 0))`;
        const [open] = await tx<{ n: number; bytes: number }[]>`SELECT count(*) AS n, coalesce(sum(i.size), 0) AS bytes
          FROM upload_owners o JOIN images i ON i.id = o.image_id
          WHERE o.token_id = ${tokenId} AND i.state = 'uploading' AND i.expires_at > ${now}`;
        const held = { count: open!.n, bytes: open!.bytes };
        if (held.count + 1 > limits.maxOpenUploads || held.bytes + row.size > limits.maxReservedBytes) return { refused: held };
        const inserted = await insertUploadOn(tx, row);
        await tx`INSERT INTO upload_owners (image_id, token_id) VALUES (${inserted.id}, ${tokenId})
          ON CONFLICT (image_id) DO UPDATE SET token_id = excluded.token_id`;
        return { row: inserted };
      }),
    sweepOwners: async () =>
      (await sql`DELETE FROM upload_owners o WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = o.image_id AND i.state = 'uploading')`)
        .count,
  };
}

export function authKeyTable(sql: Sql): AuthKeys {
  return {
    async ensure(name, fresh) {
      const [inserted] = await sql<{ value: Buffer }[]>`INSERT INTO auth_keys (name, value) VALUES (${name}, ${fresh})
        ON CONFLICT (name) DO NOTHING RETURNING value`;
      if (inserted) return inserted.value;
      // Another coordinator's key stands (read in a statement of its own, which sees its commit).
      return (await sql<{ value: Buffer }[]>`SELECT value FROM auth_keys WHERE name = ${name}`)[0]!.value;
    },
  };
}
