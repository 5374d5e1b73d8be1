// Client token rows: a token's secret is stored as its SHA-256 only (auth/tokens.ts makes and
// checks them; this is where they are kept).
import type { Db } from './database.ts';
import { asyncOf } from './async.ts';

export type TokenRole = 'read' | 'write' | 'admin';

export interface TokenRow {
  id: string;
  name: string;
  role: TokenRole;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** The tokens table; what every metadata engine answers the same way. */
export interface TokenRows {
  byHash(hash: string): Promise<TokenRow | undefined>;
  byId(id: string): Promise<TokenRow | undefined>;
  /** Every token, oldest first. */
  all(): Promise<TokenRow[]>;
  insert(row: Omit<TokenRow, 'revokedAt'>, hash: string): Promise<void>;
  /** True when the token was not revoked and is revoked now. */
  revoke(id: string, now: number): Promise<boolean>;
  /** Admin tokens neither revoked nor expired at `now`. */
  activeAdminCount(now: number): Promise<number>;
}

const COLUMNS = 'id, name, role, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt';

export function tokenRows(db: Db): TokenRows {
  const byHash = db.prepare<[string], TokenRow>(`SELECT ${COLUMNS} FROM tokens WHERE hash = ?`);
  const byId = db.prepare<[string], TokenRow>(`SELECT ${COLUMNS} FROM tokens WHERE id = ?`);
  const all = db.prepare<[], TokenRow>(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at, id`);
  const insert = db.prepare('INSERT INTO tokens (id, name, role, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
  const revoke = db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const activeAdmins = db.prepare<[number], { n: number }>(
    "SELECT count(*) AS n FROM tokens WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
  );
  return asyncOf<TokenRows>({
    byHash: (hash: string) => byHash.get(hash),
    byId: (id: string) => byId.get(id),
    all: () => all.all(),
    insert: (row: Omit<TokenRow, 'revokedAt'>, hash: string) =>
      void insert.run(row.id, row.name, row.role, hash, row.createdAt, row.expiresAt),
    revoke: (id: string, now: number) => revoke.run(now, id).changes > 0,
    activeAdminCount: (now: number) => activeAdmins.get(now)!.n,
  });
}
