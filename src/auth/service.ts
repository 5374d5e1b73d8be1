// The coordinator's authentication service: who a request is (token, cluster secret or
// anonymous), the admin token file written on first start, and the token store, URL signer and
// quotas it owns. Authorization (which role may run which operation) is rules.ts + plugin.ts.
import fs from 'node:fs';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { MetadataStore } from '../metadata/store.ts';
import { TesseraError } from '../errors.ts';
import { createTokenStore } from './tokens.ts';
import { createUrlSigner } from './signed-urls.ts';
import { createQuotas, type QuotaLimits } from './quotas.ts';
import type { Principal, Role } from './rules.ts';
import { ADMIN_TOKEN_FILE } from './admin-token-file.ts';

export type AnonymousAccess = 'none' | 'read' | 'write';

export interface AuthConfig extends QuotaLimits {
  dataDir: string;
  /** Where the admin token is written when the index holds none (default <data-dir>/admin.token). */
  adminTokenFile?: string;
  anonymous: AnonymousAccess;
  /** undefined with --insecure: then no request is the cluster. */
  secret?: string;
  /** How long a verified token is trusted without reading its row again (default VERIFIED_TOKEN_TTL_MS; set by tests only). */
  verifiedTokenTtlMs?: number;
}

/** 401 with `WWW-Authenticate: Bearer`, on plain HTTP and in GraphQL answers alike. */
export const unauthenticated = (message: string) =>
  new TesseraError('UNAUTHENTICATED', message, { http: { status: 401, headers: { 'www-authenticate': 'Bearer' } } });

export const forbidden = (message: string) => new TesseraError('FORBIDDEN', message, { http: { status: 403 } });

const sameSecret = (given: string, secret: string) => {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
};

export async function createAuth(metadata: Pick<MetadataStore, 'tokens' | 'authKeys' | 'uploadOwners'>, config: AuthConfig, log: Logger) {
  const tokens = createTokenStore(metadata.tokens, Date.now, config.verifiedTokenTtlMs);
  const signer = await createUrlSigner(metadata.authKeys);
  const quotas = createQuotas(metadata.uploadOwners, config);
  const adminTokenFile = config.adminTokenFile ?? path.join(config.dataDir, ADMIN_TOKEN_FILE);
  const anonymous: Principal | undefined =
    config.anonymous === 'none' ? undefined : { kind: 'anonymous', id: 'anonymous', name: 'anonymous', role: config.anonymous as Role };

  /** The principal of an `Authorization` header value; throws UNAUTHENTICATED (never downgrades a bad token to anonymous). */
  async function authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined || header.trim() === '') {
      if (anonymous) return anonymous;
      throw unauthenticated('This call needs a token: send `Authorization: Bearer <token>` (see "Tokens and roles" in the README).');
    }
    const m = /^Bearer +(\S+)\s*$/i.exec(header);
    if (!m) throw unauthenticated('The Authorization header must be `Bearer <token>`.');
    const secret = m[1];
    if (config.secret !== undefined && sameSecret(secret, config.secret))
      return { kind: 'cluster', id: 'cluster', name: 'cluster secret', role: undefined };
    const row = await tokens.authenticate(secret);
    if (!row) throw unauthenticated('The token is unknown, revoked or expired.');
    return { kind: 'token', id: row.id, name: row.name, role: row.role };
  }

  /** Writes a new admin token to the admin token file when the index holds no active admin token. */
  async function ensureAdminToken(): Promise<void> {
    if (await tokens.hasActiveAdmin()) {
      if (fs.existsSync(adminTokenFile)) log.info({ file: adminTokenFile }, 'admin token file');
      return;
    }
    const { token, secret } = await tokens.create('admin (created at start)', 'admin');
    fs.mkdirSync(path.dirname(adminTokenFile), { recursive: true });
    // Written aside and renamed over a stale file: never a half-written or world-readable token.
    const tmp = `${adminTokenFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, secret + '\n', { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, adminTokenFile);
    log.info(
      { file: adminTokenFile, token: token.id },
      'created an admin token (the index held none); use it as `Authorization: Bearer <contents of the file>`',
    );
  }

  const revokedHandlers: ((id: string) => void)[] = [];

  return {
    tokens,
    signer,
    quotas,
    adminTokenFile,
    anonymous: config.anonymous,
    authenticate,
    ensureAdminToken,

    /** Revokes a token and ends its live subscriptions and sockets at once. */
    async revoke(id: string): Promise<boolean> {
      const revoked = await tokens.revoke(id);
      if (revoked) {
        quotas.endAllOf(id);
        log.info({ token: id }, 'token revoked');
        for (const handle of revokedHandlers) handle(id);
      }
      return revoked;
    },

    /** A token revoked through another coordinator: requests with it are refused at once, its live subscriptions end. */
    revokedElsewhere(id: string): void {
      tokens.forget(id);
      quotas.endAllOf(id);
    },

    /** Runs `handle` after each revocation here (other coordinators end the token's subscriptions too). */
    onRevoked(handle: (id: string) => void): void {
      revokedHandlers.push(handle);
    },

    /** Is this principal (still) allowed: a token that was revoked or expired since it connected is not. */
    async stillValid(principal: Principal): Promise<boolean> {
      if (principal.kind !== 'token') return true;
      const row = await tokens.get(principal.id);
      return row !== undefined && tokens.isActive(row);
    },
  };
}

export type Auth = Awaited<ReturnType<typeof createAuth>>;
