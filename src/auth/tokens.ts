// Client tokens in the index: created random (the secret is shown once), stored as a SHA-256,
// checked on every request (a revocation here takes effect at once, one through another
// coordinator within VERIFIED_TOKEN_TTL_MS at worst), listed and revoked.
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
 * How long an active token found by its secret is trusted without reading its row again. Its
 * expiry is checked on every request all the same, and a revocation through this coordinator,
 * or one another coordinator tells of (`forget`), drops it at once: this bounds only a revocation
 * nobody told this coordinator of (its notice lost while the event channel was down).
 */
export const VERIFIED_TOKEN_TTL_MS = 1000;
/** Active tokens kept verified at most (the oldest goes first); unknown secrets are never kept. */
const VERIFIED_TOKENS_MAX = 1024;

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

/** `ttlMs`: how long a verified token is trusted (a test sets it long, to see that only a notice drops it). */
export function createTokenStore(rows: TokenRows, now: () => number = Date.now, ttlMs = VERIFIED_TOKEN_TTL_MS) {
  const isActive = (t: TokenRow, at = now()) => t.revokedAt === null && (t.expiresAt === null || t.expiresAt > at);
  // Rows of active tokens by the hash of their secret, and when they were read: a request then
  // costs a hash, not an index read. Every forget() moves `generation` on, so that a read that
  // was in flight meanwhile (and may predate a revocation) is not kept.
  const verified = new Map<string, { row: TokenRow; readAt: number }>();
  let generation = 0;
  const forget = (id?: string) => {
    generation += 1;
    if (id === undefined) return verified.clear();
    for (const [hash, v] of verified) if (v.row.id === id) verified.delete(hash);
  };

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
      const hash = hashOf(secret);
      const at = now();
      const known = verified.get(hash);
      if (known && at >= known.readAt && at - known.readAt < ttlMs) return isActive(known.row, at) ? known.row : undefined;
      const seen = generation;
      const row = await rows.byHash(hash);
      verified.delete(hash);
      if (!row || !isActive(row)) return undefined;
      if (seen === generation) {
        if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!);
        verified.set(hash, { row, readAt: at });
      }
      return row;
    },

    /** Drops what is known of token `id` (of every token without one): it was revoked elsewhere, or may have been. */
    forget,

    get: (id: string) => rows.byId(id),
    list: () => rows.all(),

    /** True when the token was active and is revoked now; false when unknown or already revoked. */
    async revoke(id: string): Promise<boolean> {
      forget(id); // before, so that no request is let in on what was known of it
      try {
        return await rows.revoke(id, now());
      } finally {
        forget(id); // after (even when the write failed: it may have committed), so that nothing read meanwhile is kept
      }
    },

    hasActiveAdmin: async () => (await rows.activeAdminCount(now())) > 0,
  };
}

export type TokenStore = ReturnType<typeof createTokenStore>;
