// Client tokens in the index: created random (the secret is shown once), stored as a SHA-256,
// looked up on every request (so a revocation takes effect at once), listed and revoked.
import { createHash, randomBytes } from 'node:crypto';
import type { TokenRow, TokenRows } from '../metadata/tokens.ts';
import { badInput } from '../errors.ts';
import { ROLES, type Role } from './rules.ts';
import { isWholeNumberIn } from '../shared/flag-values.ts';

/** Every secret starts with it, so a leaked one is easy to recognise (and to grep for). */
export const TOKEN_PREFIX = 'tsr_';
/** Longest lifetime createToken accepts: ten years. */
export const MAX_TOKEN_LIFETIME_SEC = 10 * 365 * 86400;

export type { TokenRow } from '../metadata/tokens.ts';

const hashOf = (secret: string) => createHash('sha256').update(secret).digest('hex');

/**
 * A token's id, typed on command lines (`tessera token revoke <id>`): never starting with '-',
 * which would read as an option there (one base64url id in 64 would).
 */
export function newTokenId(): string {
  for (;;) {
    const id = randomBytes(9).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function createTokenStore(rows: TokenRows, now: () => number = Date.now) {
  const isActive = (t: TokenRow, at = now()) => t.revokedAt === null && (t.expiresAt === null || t.expiresAt > at);

  return {
    isActive,

    /** A new token; `secret` is returned here only, the index keeps its hash. */
    async create(name: string, role: Role, expiresInSec?: number | null): Promise<{ token: TokenRow; secret: string }> {
      const trimmed = name.trim();
      if (trimmed === '' || trimmed.length > 100 || /[\u0000-\u001f\u007f]/.test(trimmed))
        throw badInput('A token name is 1 to 100 printable characters.');
      if (!ROLES.includes(role)) throw badInput(`role must be one of ${ROLES.join(', ')}.`);
      if (expiresInSec != null && !isWholeNumberIn(expiresInSec, 1, MAX_TOKEN_LIFETIME_SEC)) {
        throw badInput(`expiresIn must be from 1 to ${MAX_TOKEN_LIFETIME_SEC} seconds.`);
      }
      const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      const id = newTokenId();
      const t = now();
      const expiresAt = expiresInSec == null ? null : t + expiresInSec * 1000;
      await rows.insert({ id, name: trimmed, role, createdAt: t, expiresAt }, hashOf(secret));
      return { token: { id, name: trimmed, role, createdAt: t, expiresAt, revokedAt: null }, secret };
    },

    /** The active token whose secret this is; undefined when unknown, revoked or expired. */
    async authenticate(secret: string): Promise<TokenRow | undefined> {
      const row = await rows.byHash(hashOf(secret));
      return row && isActive(row) ? row : undefined;
    },

    get: (id: string) => rows.byId(id),
    list: () => rows.all(),

    /** True when the token was active and is revoked now; false when unknown or already revoked. */
    revoke: (id: string) => rows.revoke(id, now()),

    hasActiveAdmin: async () => (await rows.activeAdminCount(now())) > 0,
  };
}

export type TokenStore = ReturnType<typeof createTokenStore>;
