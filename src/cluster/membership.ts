// The coordinators sharing one PostgreSQL database: each renews a heartbeat row (table
// coordinators, migrations/postgres/010_coordination.sql) in the database's clock. A coordinator
// that died left write intents (replicas it was writing when it died); it releases its own at
// its next start, and the leader releases those of a coordinator whose heartbeat went stale (it
// died for good, or it was cut off longer than any write of it can last), then forgets it.
import type { Logger } from 'pino';
import type { SqlQuery } from '../shared/sql-query.ts';

export interface MembershipStore {
  heartbeat(id: string): Promise<void>;
  /** Members other than `self` whose last heartbeat is older than `staleMs` (database clock). */
  stale(self: string, staleMs: number): Promise<string[]>;
  /** Drops a member's row (after its intents were released). */
  forget(id: string): Promise<void>;
}

export function postgresMembershipStore(query: SqlQuery): MembershipStore {
  return {
    async heartbeat(id) {
      await query(
        `INSERT INTO coordinators (id) VALUES ($1)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp()`,
        [id],
      );
    },
    async stale(self, staleMs) {
      const rows = await query(
        `SELECT id FROM coordinators WHERE id <> $1 AND heartbeat_at < clock_timestamp() - $2::bigint * interval '1 millisecond' ORDER BY id`,
        [self, Math.round(staleMs)],
      );
      return rows.map((r) => String(r.id));
    },
    async forget(id) {
      await query(`DELETE FROM coordinators WHERE id = $1`, [id]);
    },
  };
}

/** A coordinator whose heartbeat is older than this is taken for dead: longer than any replica write lasts (30 s deadline). */
export const DEFAULT_STALE_AFTER_MS = 60_000;

export interface Membership {
  /** Starts the heartbeat (every member, leader or not). */
  start(): void;
  stop(): Promise<void>;
  /** The leader's sweep: releases the write intents of stale members (fenced), then forgets them. */
  sweep(release: (ids: string[]) => Promise<number>): Promise<void>;
}

export function createMembership({
  store,
  id,
  everyMs,
  staleAfterMs = DEFAULT_STALE_AFTER_MS,
  log,
}: {
  store: MembershipStore;
  id: string;
  everyMs: number;
  staleAfterMs?: number;
  log?: Logger;
}): Membership {
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let stopped = true;
  let failing = false;
  const beat = () => {
    timer = undefined;
    beating = store.heartbeat(id).then(
      () => void (failing = false),
      (err: Error) => {
        if (!failing) log?.warn({ err: err.message }, 'coordinator heartbeat failed');
        failing = true;
      },
    );
    void beating.finally(() => {
      if (!stopped) timer = setTimeout(beat, everyMs).unref();
    });
  };
  return {
    start() {
      if (!stopped) return;
      stopped = false;
      beat();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      // A heartbeat hanging on a database out of reach must not hold up a shutdown.
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([beating, new Promise((r) => (wait = setTimeout(r, 1000)))]);
      clearTimeout(wait);
    },
    async sweep(release) {
      for (const gone of await store.stale(id, staleAfterMs)) {
        const released = await release([gone]);
        await store.forget(gone);
        log?.info(
          { coordinator: gone, intents: released },
          'a coordinator stopped heartbeating: its unfinished replica writes are cleaned',
        );
      }
    },
  };
}
