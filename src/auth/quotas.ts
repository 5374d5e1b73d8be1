// Per-token limits: request rate (rate-limiter-flexible, in memory), open uploads and the bytes
// they reserve (counted in the index, so a restart keeps them), and graphql-ws connections and
// live subscriptions (counted here, ended when their token is revoked).
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { ImageRow } from '../metadata/catalog.ts';
import type { InsertUpload } from '../uploads/begin-upload.ts';
import type { UploadOwners } from '../metadata/upload-owners.ts';
import { TesseraError } from '../errors.ts';
import type { Principal } from './rules.ts';

export interface QuotaLimits {
  /** Requests per second per token (0: unlimited). */
  rateLimitPerSec: number;
  maxOpenUploadsPerToken: number;
  maxReservedBytesPerToken: number;
  maxWsConnectionsPerToken: number;
  maxSubscriptionsPerToken: number;
}

const rateLimited = (retryAfterMs: number) =>
  new TesseraError('RATE_LIMITED', `Too many requests for this token; retry in ${Math.ceil(retryAfterMs / 1000)} s.`, {
    retryAfterSec: Math.ceil(retryAfterMs / 1000),
    http: { status: 429, headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } },
  });

/** The three kinds of per-token limit together, as the auth service and the HTTP layer use them. */
export function createQuotas(owners: UploadOwners, limits: QuotaLimits, now: () => number = Date.now) {
  return { ...requestRate(limits), ...uploadQuota(owners, limits, now), ...liveConnections(limits) };
}

/** Requests per second per token (rate-limiter-flexible, in memory). */
function requestRate(limits: QuotaLimits) {
  const limiter = limits.rateLimitPerSec > 0 ? new RateLimiterMemory({ points: limits.rateLimitPerSec, duration: 1 }) : undefined;
  return {
    /** One request (HTTP request, GET /images or graphql-ws operation); throws RATE_LIMITED past the rate. */
    async admit(principal: Principal): Promise<void> {
      if (!limiter || principal.kind === 'cluster') return;
      try {
        await limiter.consume(principal.id);
      } catch (res) {
        if (res instanceof RateLimiterRes) throw rateLimited(res.msBeforeNext);
        throw res;
      }
    },
  };
}

/** Open uploads and the bytes they reserve, counted in the index so a restart keeps them. */
function uploadQuota(owners: UploadOwners, limits: QuotaLimits, now: () => number) {
  const limitsOfToken = { maxOpenUploads: limits.maxOpenUploadsPerToken, maxReservedBytes: limits.maxReservedBytesPerToken };
  return {
    /**
     * Runs `begin` with an insert that, in one index transaction, checks the principal's open
     * uploads leave room for `size` more bytes, inserts the upload and records its owner.
     */
    reserveUpload(principal: Principal, size: number, begin: (insert: InsertUpload) => Promise<ImageRow>): Promise<ImageRow> {
      return begin(async (row) => {
        const { row: inserted, refused } = await owners.insertOwnedUpload(row, principal.id, limitsOfToken, now());
        if (inserted) return inserted;
        if (refused.count + 1 > limits.maxOpenUploadsPerToken) {
          throw new TesseraError(
            'QUOTA_EXCEEDED',
            `This token has ${refused.count} open uploads, the most allowed (${limits.maxOpenUploadsPerToken}); complete or abort one first.`,
          );
        }
        throw new TesseraError(
          'QUOTA_EXCEEDED',
          `This token's open uploads reserve ${refused.bytes} bytes; ${size} more would pass its limit of ${limits.maxReservedBytesPerToken}.`,
        );
      });
    },

    /** Forgets owners of uploads that completed or went away (called by the expiry sweep). */
    sweepOwners: () => owners.sweepOwners(),
  };
}

/** graphql-ws connections and live subscriptions, counted in memory and ended when their token is revoked. */
function liveConnections(limits: QuotaLimits) {
  const wsConnections = new Map<string, number>();
  /** Live subscriptions (SSE and graphql-ws) per principal, with a way to end each. */
  const subscriptions = new Map<string, Set<() => void>>();
  /** Open graphql-ws sockets per principal, to close them when the token is revoked. */
  const sockets = new Map<string, Set<(code: number, reason: string) => void>>();

  return {
    /** A new graphql-ws connection; false when the principal has its maximum. */
    openSocket(principal: Principal, close: (code: number, reason: string) => void): (() => void) | false {
      const n = wsConnections.get(principal.id) ?? 0;
      if (principal.kind !== 'cluster' && n >= limits.maxWsConnectionsPerToken) return false;
      wsConnections.set(principal.id, n + 1);
      const set = sockets.get(principal.id) ?? new Set();
      set.add(close);
      sockets.set(principal.id, set);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (wsConnections.get(principal.id) ?? 1) - 1;
        if (left > 0) wsConnections.set(principal.id, left);
        else wsConnections.delete(principal.id);
        set.delete(close);
        if (set.size === 0) sockets.delete(principal.id);
      };
    },

    /** A new subscription; throws QUOTA_EXCEEDED past the limit. Returns its release function. */
    startSubscription(principal: Principal, stop: () => void): () => void {
      const set = subscriptions.get(principal.id) ?? new Set();
      if (set.size >= limits.maxSubscriptionsPerToken) {
        throw new TesseraError(
          'QUOTA_EXCEEDED',
          `This token has ${set.size} live subscriptions, the most allowed (${limits.maxSubscriptionsPerToken}).`,
        );
      }
      set.add(stop);
      subscriptions.set(principal.id, set);
      return () => {
        set.delete(stop);
        if (set.size === 0 && subscriptions.get(principal.id) === set) subscriptions.delete(principal.id);
      };
    },

    subscriptionCount: (principalId: string) => subscriptions.get(principalId)?.size ?? 0,

    /** The principals with a live subscription or socket here (checked again when revocations may have been missed). */
    livePrincipals: (): string[] => [...new Set([...subscriptions.keys(), ...sockets.keys()])],

    /** A revoked token's live subscriptions end and its sockets close, at once. */
    endAllOf(principalId: string): void {
      for (const stop of [...(subscriptions.get(principalId) ?? [])]) stop();
      for (const close of [...(sockets.get(principalId) ?? [])]) close(4401, 'UNAUTHENTICATED: the token was revoked');
    },
  };
}

export type Quotas = ReturnType<typeof createQuotas>;
