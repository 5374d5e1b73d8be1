// Fencing tokens: what stops a former leader that was paused or partitioned (and so missed losing
// its lease) from acting on stale authority. Every background pass runs inside withFence(token),
// the token of the lease it was started under; whatever that pass does downstream reads it here
// without it being threaded through every call: the PostgreSQL engine checks it against the lease
// row in the same transaction as the write, and the datanode client sends it (signed) with each
// request, which a datanode refuses once it has seen a higher one. Work outside background passes
// (the API's own requests) carries no token and is not fenced; nor does the release of a pass's own
// write intents (withoutFence below).
import { AsyncLocalStorage } from 'node:async_hooks';

/** The fencing token of the background pass that sent a datanode request (decimal, covered by the signature). */
export const FENCE_HEADER = 'x-tessera-fence';

/** A fencing token is a non-negative bigint in decimal; bounded so it is stored and compared safely. */
export const FENCE_PATTERN = /^(0|[1-9][0-9]{0,18})$/;

const current = new AsyncLocalStorage<string>();

/** Runs `fn` (and everything it starts) as work fenced by `token`; undefined runs it unfenced. */
export function withFence<T>(token: string | undefined, fn: () => T): T {
  return token === undefined ? fn() : current.run(token, fn);
}

/**
 * Runs `fn` (and everything it starts, timers included) unfenced, as an API request's work. Only
 * for the release of a pass's own write intents, which a stale pass must still be able to make
 * (why it is safe: cluster/intent-release.ts).
 */
export function withoutFence<T>(fn: () => T): T {
  return current.exit(fn);
}

/** The fencing token of the background pass this code runs in, if any. */
export function currentFence(): string | undefined {
  return current.getStore();
}

/** Compares two tokens (decimal strings matching FENCE_PATTERN) without losing precision. */
export function compareFence(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A write refused because the pass making it holds a stale fencing token: another coordinator leads now. */
export class FencedError extends Error {
  readonly code = 'FENCED';
  constructor(token: string, what = 'write') {
    super(`${what} refused: fencing token ${token} is stale (another coordinator holds the background lease now)`);
    this.name = 'FencedError';
  }
}

/**
 * How long a fenced transaction may sit idle on the server (waiting for its client's next
 * statement) before PostgreSQL ends the session. A leader cut off from the database in the middle
 * of a fenced transaction would otherwise hold its lock on the lease row (below) until the server
 * noticed the dead connection (TCP keepalive: hours), and no successor could take the lease.
 */
export const FENCED_IDLE_LIMIT_MS = 5000;

/**
 * What the PostgreSQL engine runs first in a write transaction made under a fencing token
 * ($1 = currentFence()): no row means the token is stale (throw FencedError). The lease row
 * (migrations/postgres/010_coordination.sql) is locked FOR SHARE, so a takeover (an UPDATE of
 * that row) waits for this transaction to end, and one that came first makes the write refused;
 * the same statement bounds how long the transaction may then sit idle (FENCED_IDLE_LIMIT_MS).
 */
export const FENCE_CHECK_SQL =
  `SELECT set_config('idle_in_transaction_session_timeout', '${FENCED_IDLE_LIMIT_MS}', true) ` +
  `FROM leader_lease WHERE name = 'background' AND token = $1::bigint FOR SHARE`;
