// The deletion queue and the writes in flight on PostgreSQL, as catalog/deletion-queue.ts is for
// SQLite. What SQLite does in a transaction of several statements is one statement here where
// it can be (data-modifying CTEs): atomic on its own, and one round trip. A release of write
// intents is two (a lock, then the statement): see releaseWhere.
import type { DeletionQueue, QueuedDeletion, ReleasedIntents, ReplicaKey } from '../catalog/deletion-queue.ts';
import type { DeletionReason, ReplicaDeletion } from '../catalog.ts';
import type postgres from 'postgres';
import { fenced, fencedWriter, transaction, type Q, type Sql } from './connection.ts';
import type { Async } from '../async.ts';
import type { AsyncCatalog } from '../store.ts';

/** A queued deletion replaces the row of the same file whole, as SQLite's INSERT OR REPLACE. */
const REPLACE = `ON CONFLICT (fragment_id, datanode_id) DO UPDATE SET not_before = excluded.not_before, attempts = 0,
  reason = excluded.reason, image_key = excluded.image_key`;

/**
 * Releases the write intents `which` selects: each file becomes a due deletion (one already queued
 * keeps its reason and attempts), unless the index records it as a replica (an in-place repair's
 * intent is on a recorded copy), as catalog/deletion-queue.ts's intentToDeletion, or another
 * coordinator's intent not released here still covers it (it is writing the file: a newer leader
 * repairing the copy a stale one wrote). Answers how many files left a deletion queued and how
 * many were dropped as recorded (a file still covered counts in neither), and how many intents went.
 */
const releaseWhere = (sql: Sql, which: postgres.Fragment, now: number): Promise<ReleasedIntents & { released: number }> =>
  transaction(sql, async (tx) => {
    // First lock every intent on the files released here, whoever's. Two coordinators releasing
    // their own intents on one file at once would otherwise each see the other's (not yet
    // deleted) as covering it, and neither would queue its deletion: an orphan for an hour.
    // Locked, the second waits, then reads a snapshot taken after the first committed (read
    // committed: each statement its own snapshot). Releases lock in key order; a recording's
    // delete of the landed intents does not, so with two coordinators' intents on one file the
    // two can deadlock: PostgreSQL aborts one after deadlock_timeout (1 s) and transaction()
    // retries it. Rare enough (a newer leader repairing a stale one's copy) not to cost every
    // recording a locking round trip.
    await tx`SELECT count(*) FROM (SELECT 1 FROM write_intents
      WHERE (fragment_id, datanode_id) IN (SELECT fragment_id, datanode_id FROM write_intents WHERE ${which})
      ORDER BY fragment_id, datanode_id, coordinator_id FOR UPDATE) AS locked`;
    // Covered: the file has more intents than this release drops. The statement's snapshot still
    // shows the rows `dropped` deletes, so one indexed count per file (not a scan of `dropped`).
    return (
      await tx<(ReleasedIntents & { released: number })[]>`WITH
          dropped AS (DELETE FROM write_intents WHERE ${which} RETURNING fragment_id, datanode_id),
          files AS (SELECT fragment_id, datanode_id, count(*) AS n FROM dropped GROUP BY fragment_id, datanode_id),
          marked AS (SELECT f.fragment_id, f.datanode_id,
              EXISTS (SELECT 1 FROM replicas r WHERE r.fragment_id = f.fragment_id AND r.datanode_id = f.datanode_id) AS recorded,
              (SELECT count(*) FROM write_intents o WHERE o.fragment_id = f.fragment_id AND o.datanode_id = f.datanode_id) > f.n AS covered
            FROM files f),
          queued AS (INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason)
            SELECT fragment_id, datanode_id, ${now}, 0, 'unrecorded-write' FROM marked WHERE NOT recorded AND NOT covered
            ON CONFLICT DO NOTHING)
        SELECT count(*) FILTER (WHERE NOT recorded AND NOT covered) AS deletions, count(*) FILTER (WHERE recorded) AS recorded,
          (SELECT count(*) FROM dropped) AS released FROM marked`
    )[0]!;
  });

/**
 * Write intents tagged with `instanceId`, on `q`: a deletion queued for the same file goes (it is
 * being written again). Another coordinator's intent on the same file stays a row of its own.
 */
export async function addWriteIntentsOn(q: Q, fragmentId: string, datanodeIds: string[], instanceId: string): Promise<void> {
  await q`WITH unqueued AS (DELETE FROM replica_deletions WHERE fragment_id = ${fragmentId} AND datanode_id = ANY(${datanodeIds}::text[]))
    INSERT INTO write_intents (fragment_id, datanode_id, coordinator_id)
    SELECT ${fragmentId}, unnest(${datanodeIds}::text[]), ${instanceId} ON CONFLICT DO NOTHING`;
}

/**
 * The deletion queue on the pool. `instanceId` is this coordinator's: its write intents carry it,
 * and it releases its own only (releaseWriteIntents, and releaseAllWriteIntents at its start), not
 * those of the others writing at the same time, the same file included ('' when none is given:
 * one coordinator, all of them). Recording a copy ends every intent on it, whoever made it.
 */
export function deletionQueries(sql: Sql, instanceId = ''): Async<DeletionQueue> & Pick<AsyncCatalog, 'releaseWriteIntentsOf'> {
  const w = fencedWriter(sql);
  /** This coordinator's own write intents ('' : all of them). */
  const mine = () => (instanceId ? sql`coordinator_id = ${instanceId}` : sql`true`);
  const keys = (ds: ReplicaKey[]) => [ds.map((d) => d.fragmentId), ds.map((d) => d.datanodeId)];
  /** Removes each deletion still queued as it was sent (same reason and image key), as catalog/deletion-queue.ts's ack. */
  async function ack(ds: QueuedDeletion[]): Promise<void> {
    if (ds.length === 0) return;
    const [fragments, datanodes] = keys(ds);
    await w`DELETE FROM replica_deletions d
      USING unnest(${fragments!}::text[], ${datanodes!}::text[], ${ds.map((d) => d.reason)}::text[], ${ds.map((d) => d.imageKey)}::text[]) AS k(f, n, r, i)
      WHERE d.fragment_id = k.f AND d.datanode_id = k.n AND d.reason = k.r AND d.image_key IS NOT DISTINCT FROM k.i`;
  }
  return {
    addWriteIntents: (fragmentId, datanodeIds) => fenced(sql, (q) => addWriteIntentsOn(q, fragmentId, datanodeIds, instanceId)),
    async releaseWriteIntents(fragmentId, datanodeIds, now) {
      await releaseWhere(sql, sql`${mine()} AND fragment_id = ${fragmentId} AND datanode_id = ANY(${datanodeIds}::text[])`, now);
    },
    async releaseAllWriteIntents(now) {
      const { deletions, recorded } = await releaseWhere(sql, mine(), now);
      return { deletions, recorded };
    },
    releaseWriteIntentsOf: async (coordinatorIds, now) =>
      (await releaseWhere(sql, sql`coordinator_id = ANY(${coordinatorIds}::text[])`, now)).released,
    deletionTargetsOf: async (fragmentId) =>
      (
        await sql<{ d: string }[]>`SELECT datanode_id AS d FROM replica_deletions WHERE fragment_id = ${fragmentId}
          UNION SELECT datanode_id FROM write_intents WHERE fragment_id = ${fragmentId}`
      ).map((r) => r.d),
    dueDeletions: async (now, limit = 256) => [
      ...(await sql<
        ReplicaDeletion[]
      >`SELECT fragment_id AS "fragmentId", datanode_id AS "datanodeId", attempts, reason, image_key AS "imageKey"
        FROM replica_deletions WHERE not_before <= ${now} ORDER BY not_before LIMIT ${limit}`),
    ],
    ackDeletion: (d) => ack([d]),
    ackDeletions: ack,
    async retryDeletionAt(d, notBefore) {
      await w`UPDATE replica_deletions SET attempts = attempts + 1, not_before = ${notBefore}
        WHERE fragment_id = ${d.fragmentId} AND datanode_id = ${d.datanodeId}`;
    },
    async postponeDeletion(d, notBefore) {
      await w`UPDATE replica_deletions SET not_before = ${notBefore} WHERE fragment_id = ${d.fragmentId} AND datanode_id = ${d.datanodeId}`;
    },
    resumeDeletionsOn: async (datanodeId, now) =>
      (await w`UPDATE replica_deletions SET not_before = ${now} WHERE datanode_id = ${datanodeId} AND not_before > ${now}`).count,
    async settleRecordedWrites(ks) {
      if (ks.length === 0) return [];
      const [fragments, datanodes] = keys(ks);
      return [
        ...(await w<ReplicaKey[]>`DELETE FROM replica_deletions d USING unnest(${fragments!}::text[], ${datanodes!}::text[]) AS k(f, n)
          WHERE d.fragment_id = k.f AND d.datanode_id = k.n AND d.reason = 'unrecorded-write'
            AND EXISTS (SELECT 1 FROM replicas r WHERE r.fragment_id = d.fragment_id AND r.datanode_id = d.datanode_id)
          RETURNING d.fragment_id AS "fragmentId", d.datanode_id AS "datanodeId"`),
      ];
    },
    pendingDeletionCount: async () => (await sql<{ n: number }[]>`SELECT count(*) AS n FROM replica_deletions`)[0]!.n,
    async purgeDeletionsOn(datanodeId) {
      await w`WITH intents AS (DELETE FROM write_intents WHERE datanode_id = ${datanodeId})
        DELETE FROM replica_deletions WHERE datanode_id = ${datanodeId}`;
    },
  };
}

/** The steps the catalog's transactions combine (run on the transaction `tx`). */
export const deletionSteps = {
  /** Queues the deletion of one file; `imageKey` when it belongs to a deleted image (the datanode's proof to delete it). */
  queue: (tx: Q, key: ReplicaKey, now: number, reason: DeletionReason, imageKey: string | null = null) =>
    tx`INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      VALUES (${key.fragmentId}, ${key.datanodeId}, ${now}, 0, ${reason}, ${imageKey}) ${tx.unsafe(REPLACE)}`,
  queueMany: (tx: Q, fragmentId: string, datanodeIds: string[], now: number, reason: DeletionReason) =>
    tx`INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      SELECT ${fragmentId}, unnest(${datanodeIds}::text[]), ${now}, 0, ${reason}, NULL ${tx.unsafe(REPLACE)}`,
  queueReplicasOfFragment: (tx: Q, fragmentId: string, now: number) =>
    tx`INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      SELECT fragment_id, datanode_id, ${now}, 0, 'fragment-replaced', NULL FROM replicas WHERE fragment_id = ${fragmentId} ${tx.unsafe(REPLACE)}`,
  queueReplicasOfImage: (tx: Q, imageId: number, now: number, reason: DeletionReason, imageKey: string | null) =>
    tx`INSERT INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      SELECT r.fragment_id, r.datanode_id, ${now}, 0, ${reason}, ${imageKey}::text FROM replicas r JOIN fragments f ON f.id = r.fragment_id
      WHERE f.image_id = ${imageId} ${tx.unsafe(REPLACE)}`,
  /** A deletion or a write in flight is queued for the file. */
  isQueued: async (q: Q, fragmentId: string, datanodeId: string) =>
    (
      await q`SELECT 1 FROM replica_deletions WHERE fragment_id = ${fragmentId} AND datanode_id = ${datanodeId}
        UNION ALL SELECT 1 FROM write_intents WHERE fragment_id = ${fragmentId} AND datanode_id = ${datanodeId} LIMIT 1`
    ).length > 0,
};
