// Which coordinator does the background work (health sampling, repair, deletions, reconciliation,
// scrubbing, expiry, index rebuilds) when several share one PostgreSQL database: the holder of
// one lease row, taken and renewed by one conditional UPDATE. The row's expiry is in the
// database's clock; the holder's belief is in its own monotonic clock, and always ends first:
//
//   A renewal SENT at local time s, if it succeeds, makes this process the leader until
//   s + ttl − margin (its own monotonic clock). The database set the expiry to (its time when it
//   ran the UPDATE) + ttl, and it ran the UPDATE after s. So, with clocks that run at roughly the
//   same rate (the margin covers the drift), this process stops starting work before the row
//   expires, and nobody else can take the row before it expires: never two leaders at once,
//   however long this process is paused or cut off, even if the answer arrives late or never.
//
// Takeover: a leader that dies right after renewing leaves a row that expires ≤ ttl later; the
// others try every ttl/3, so one of them holds it within ttl + ttl/3 (+ one round trip) of the
// death: with the default ttl of 10 s, 10–13.3 s. A clean stop releases the row at once.
//
// What a leader started before it stopped believing (a request already sent, a transaction under
// way) is caught by fencing: the row's token grows at every change of holder, every background
// pass runs under the token it started with (shared/fence.ts), and the database and the
// datanodes refuse work under a token older than the newest they know.
//
// On SQLite there is one coordinator: alwaysLeader() holds for good, with no table and no timer.
import type { Logger } from 'pino';
import type { SqlQuery } from '../shared/sql-query.ts';

/** The lease's storage: one row, changed by one conditional statement (postgresLeaseStore below). */
export interface LeaseStore {
  /**
   * Takes the lease for `holder` if it is free, expired, or already `holder`'s, for `ttlMs` from
   * now in the store's clock; the token grows when the holder changes. The token when `holder`
   * holds it afterwards; undefined when another does.
   */
  acquire(holder: string, ttlMs: number): Promise<string | undefined>;
  /** Ends `holder`'s lease now (a clean stop: the next coordinator need not wait for the expiry). */
  release(holder: string): Promise<void>;
}

export interface LeaderLease {
  /** Whether this process may run background work now (synchronous: the scheduler's gate). */
  isLeader(): boolean;
  /** The fencing token while leader; undefined otherwise. */
  token(): string | undefined;
  start(): void;
  /** Stops renewing and releases the lease if held. */
  stop(): Promise<void>;
}

export const DEFAULT_LEASE_TTL_MS = 10_000;

/** The margin by which a holder stops before its lease row expires: clock rate drift and timer lateness. */
export function safetyMargin(ttlMs: number): number {
  return Math.max(200, Math.round(ttlMs / 10));
}

/** The longest a dead leader's work waits for a successor: the row's ttl, then at most one poll interval. */
export function takeoverBoundMs(ttlMs: number): number {
  return ttlMs + Math.ceil(ttlMs / 3);
}

/** SQLite: one coordinator, which always leads (unfenced: nobody else could act). */
export function alwaysLeader(): LeaderLease {
  return { isLeader: () => true, token: () => undefined, start() {}, async stop() {} };
}

export interface LeaseOptions {
  store: LeaseStore;
  /** This coordinator's instance id. */
  holder: string;
  ttlMs?: number;
  marginMs?: number;
  log?: Logger;
  /** A monotonic clock in ms (performance.now by default; tests pass a fake one). */
  now?: () => number;
  /** Called when this process becomes leader, with its token. */
  onAcquired?: (token: string) => void;
  /** Called when this process stops being leader (lapsed, taken over, or stopped). */
  onLost?: (why: string) => void;
}

function checkTimes(ttlMs: number, marginMs: number): void {
  if (!(ttlMs >= 1000)) throw new Error(`lease ttl ${ttlMs} ms is below 1 s`);
  if (!(marginMs >= 0 && marginMs < ttlMs / 2)) throw new Error(`lease margin ${marginMs} ms must be under half the ttl`);
}

function withinMs<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function createLeaderLease({
  store,
  holder,
  ttlMs = DEFAULT_LEASE_TTL_MS,
  marginMs = safetyMargin(ttlMs),
  log,
  now = () => performance.now(),
  onAcquired,
  onLost,
}: LeaseOptions): LeaderLease {
  checkTimes(ttlMs, marginMs);
  const everyMs = Math.max(1, Math.floor(ttlMs / 3));
  let held: string | undefined;
  let until = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let lapse: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;
  let failing = false;

  const lose = (why: string) => {
    if (held === undefined) return;
    held = undefined;
    until = -Infinity;
    clearTimeout(lapse);
    log?.warn({ why }, 'no longer the background leader: background work stops');
    onLost?.(why);
  };

  /** One attempt: the answer counts from the time it was sent, never from when it arrived. */
  async function attempt(): Promise<void> {
    const sent = now();
    let token: string | undefined;
    try {
      // A request that hangs must not hold up the next: after the ttl its answer no longer matters.
      token = await withinMs(store.acquire(holder, ttlMs), ttlMs);
      if (failing) log?.info('lease store reachable again');
      failing = false;
    } catch (err) {
      if (!failing) log?.warn({ err: (err as Error).message }, 'lease renewal failed; leading only until the last renewal runs out');
      failing = true;
      return;
    }
    if (stopped) return;
    if (token === undefined) return lose('another coordinator holds the lease');
    const deadline = sent + ttlMs - marginMs;
    if (deadline <= now()) return; // answered too late to grant anything
    if (held !== undefined && held !== token) lose(`the lease changed hands (token ${held} → ${token})`);
    const fresh = held === undefined;
    held = token;
    until = deadline;
    clearTimeout(lapse);
    (lapse = setTimeout(() => lose('the lease was not renewed in time'), deadline - now())).unref();
    if (!fresh) return;
    log?.info({ token, ttlMs }, 'background leader now');
    onAcquired?.(token);
  }

  function tick(): void {
    timer = undefined;
    if (stopped) return;
    running = attempt().finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(tick, everyMs);
    });
  }

  return {
    isLeader: () => held !== undefined && now() < until,
    token: () => (held !== undefined && now() < until ? held : undefined),
    start() {
      if (!stopped) return;
      stopped = false;
      tick();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      if (held === undefined) return;
      lose('stopping');
      // Bounded: a database out of reach must not hold up a shutdown (the row then expires on its own).
      await withinMs(store.release(holder), ttlMs).catch((err: Error) => log?.warn({ err: err.message }, 'lease release failed'));
    },
  };
}

/** The lease row's name: one background lease per database. */
export const BACKGROUND_LEASE = 'background';

/**
 * The lease in PostgreSQL (table leader_lease, migrations/postgres/010_coordination.sql). Times
 * are the database's clock_timestamp(), never a coordinator's wall clock.
 */
export function postgresLeaseStore(query: SqlQuery): LeaseStore {
  return {
    async acquire(holder, ttlMs) {
      const rows = await query(
        `UPDATE leader_lease
            SET token = CASE WHEN holder = $1 THEN token ELSE token + 1 END,
                holder = $1,
                expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
          WHERE name = $3 AND (holder = $1 OR expires_at <= clock_timestamp())
          RETURNING token::text AS token`,
        [holder, Math.round(ttlMs), BACKGROUND_LEASE],
      );
      return rows.length === 1 ? String(rows[0].token) : undefined;
    },
    async release(holder) {
      await query(`UPDATE leader_lease SET expires_at = '-infinity' WHERE name = $2 AND holder = $1`, [holder, BACKGROUND_LEASE]);
    },
  };
}
