// Replica files to delete from datanodes (replica_deletions: due at not_before, retried with
// backoff) and writes in flight (write_intents: a fragment being written to a datanode, so that
// a write the coordinator never records, e.g. after a crash, becomes a deletion rather than a
// file nobody knows of). A write intent replaces a queued deletion of the same file: the file
// is being written again and must not be deleted under the write. An intent names no coordinator
// here: a SQLite index has one (coordination.ts), so every intent is its own; on PostgreSQL each
// coordinator keeps and releases its own (postgres/deletions.ts).
import type { Db } from '../database.ts';
import type { DeletionReason, ReplicaDeletion } from '../catalog.ts';

/** One replica file: a fragment on a datanode. */
export interface ReplicaKey {
  fragmentId: string;
  datanodeId: string;
}

/**
 * What releasing write intents did: `deletions` of them left their file queued for deletion (by
 * this release, or by a deletion already queued), `recorded` were dropped without one because the
 * index records their file as a replica (a recorded write, an in-place repair's copy).
 */
export interface ReleasedIntents {
  deletions: number;
  recorded: number;
}

/**
 * A queued deletion as the deleter took it: its file, and what it was queued as. Its
 * acknowledgement removes the file's row only while it has that reason and image key: a deletion
 * that replaced it meanwhile with another (an image deleted: INSERT OR REPLACE / ON CONFLICT DO
 * UPDATE of the same file) was not sent and stays; an identical re-queue (same reason and key) is
 * acknowledged together with it.
 */
export type QueuedDeletion = ReplicaKey & Pick<ReplicaDeletion, 'reason' | 'imageKey'>;

/** The deletion queue and the writes in flight; what another metadata engine answers the same way. */
export interface DeletionQueue {
  /** Records, before a write starts, that `fragmentId` may land on these datanodes. */
  addWriteIntents(fragmentId: string, datanodeIds: string[]): void;
  /** A write that will not be recorded: whatever reached the datanodes is deleted (not a file the index records as a replica). */
  releaseWriteIntents(fragmentId: string, datanodeIds: string[], now: number): void;
  /** After a restart no write is in flight: every intent left is a write that may have half-happened, released as releaseWriteIntents does. */
  releaseAllWriteIntents(now: number): ReleasedIntents;
  /** Datanodes with a deletion (or a write in flight) queued for this fragment. */
  deletionTargetsOf(fragmentId: string): string[];
  /** Deletions due at `now`, the longest-waiting first. */
  dueDeletions(now: number, limit?: number): ReplicaDeletion[];
  /**
   * The datanode deleted the file (or settled it): its deletion goes if it is still queued as it
   * was sent (same reason and image key). A deletion that replaced it meanwhile stays, to be sent
   * in turn; so does a write intent for the same file (a repair copying the fragment back there).
   */
  ackDeletion(d: QueuedDeletion): void;
  /** ackDeletion for many, in one transaction. */
  ackDeletions(ds: QueuedDeletion[]): void;
  /** A failed send: due again at `notBefore`. By file, not as queued: a row that replaced it is only delayed (its attempts counted). */
  retryDeletionAt(d: ReplicaKey, notBefore: number): void;
  /**
   * Not tried (its datanode is DOWN): checked again later, without counting as a failed attempt.
   * By file, not as queued: a row that replaced it is only delayed.
   */
  postponeDeletion(d: ReplicaKey, notBefore: number): void;
  /** A datanode is live again: every deletion waiting for it is due now. Answers how many. */
  resumeDeletionsOn(datanodeId: string, now: number): number;
  /**
   * The deleter's second look before it deletes an unrecorded write: of these files, the deletions
   * still queued as unrecorded writes whose file the index records as a replica are unqueued
   * (settled without deleting), and answered. Check and unqueue are one statement: a deletion that
   * replaced the row meanwhile (its image deleted) is not an unrecorded write and stays queued.
   */
  settleRecordedWrites(keys: ReplicaKey[]): ReplicaKey[];
  /** Deletions queued (writes in flight are not deletions). */
  pendingDeletionCount(): number;
  /** Before a datanode leaves the index: its queued deletions and intents can never be acknowledged. */
  purgeDeletionsOn(datanodeId: string): void;
}

/** The prepared statements of the deletion queue and the write intents. */
function deletionStatements(db: Db) {
  return {
    queue: db.prepare(
      `INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key) VALUES (?, ?, ?, 0, ?, ?)`,
    ),
    queueReplicasOfFragment: db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason)
      SELECT fragment_id, datanode_id, ?, 0, 'fragment-replaced' FROM replicas WHERE fragment_id = ?`),
    queueReplicasOfImage:
      db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      SELECT r.fragment_id, r.datanode_id, ?, 0, ?, ? FROM replicas r JOIN fragments f ON f.id = r.fragment_id WHERE f.image_id = ?`),
    unqueue: db.prepare(`DELETE FROM replica_deletions WHERE fragment_id = ? AND datanode_id = ?`),
    ack: db.prepare(`DELETE FROM replica_deletions WHERE fragment_id = @fragmentId AND datanode_id = @datanodeId
      AND reason = @reason AND image_key IS @imageKey`),
    addIntent: db.prepare(`INSERT OR IGNORE INTO write_intents (fragment_id, datanode_id) VALUES (?, ?)`),
    dropIntent: db.prepare(`DELETE FROM write_intents WHERE fragment_id = ? AND datanode_id = ?`),
    // A deletion queued for the file meanwhile keeps its reason and attempts. A file the index
    // records as a replica is not deleted, whatever the write did (an in-place repair takes an
    // intent on a recorded copy, and a rendition's copy has no records on the datanodes to
    // refuse the delete): the index itself says it is not garbage. A copy the write left bad is
    // the scrubber's and read-repair's to find, as any bad replica.
    intentToDeletion: db.prepare(`INSERT OR IGNORE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason)
      SELECT @fragmentId, @datanodeId, @now, 0, 'unrecorded-write'
      WHERE NOT EXISTS (SELECT 1 FROM replicas WHERE fragment_id = @fragmentId AND datanode_id = @datanodeId)`),
    allIntentsToDeletions: db.prepare(`INSERT OR IGNORE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason)
      SELECT w.fragment_id, w.datanode_id, ?, 0, 'unrecorded-write' FROM write_intents w
      WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.fragment_id = w.fragment_id AND r.datanode_id = w.datanode_id)`),
    dropAllIntents: db.prepare(`DELETE FROM write_intents`),
    recordedIntents: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM write_intents w
      WHERE EXISTS (SELECT 1 FROM replicas r WHERE r.fragment_id = w.fragment_id AND r.datanode_id = w.datanode_id)`),
    due: db.prepare<
      [number, number],
      ReplicaDeletion
    >(`SELECT fragment_id AS fragmentId, datanode_id AS datanodeId, attempts, reason, image_key AS imageKey
      FROM replica_deletions WHERE not_before <= ? ORDER BY not_before LIMIT ?`),
    resumeOn: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE datanode_id = ? AND not_before > ?`),
    postpone: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE fragment_id = ? AND datanode_id = ?`),
    retry: db.prepare(`UPDATE replica_deletions SET attempts = attempts + 1, not_before = ? WHERE fragment_id = ? AND datanode_id = ?`),
    pending: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM replica_deletions`),
    settleRecordedWrite: db.prepare(`DELETE FROM replica_deletions WHERE fragment_id = @fragmentId AND datanode_id = @datanodeId
      AND reason = 'unrecorded-write' AND EXISTS (SELECT 1 FROM replicas WHERE fragment_id = @fragmentId AND datanode_id = @datanodeId)`),
    isQueued: db.prepare<
      [string, string, string, string],
      { one: number }
    >(`SELECT 1 AS one FROM replica_deletions WHERE fragment_id = ? AND datanode_id = ?
      UNION ALL SELECT 1 FROM write_intents WHERE fragment_id = ? AND datanode_id = ? LIMIT 1`),
    targets: db.prepare<
      [string, string],
      { datanodeId: string }
    >(`SELECT datanode_id AS datanodeId FROM replica_deletions WHERE fragment_id = ?
      UNION SELECT datanode_id FROM write_intents WHERE fragment_id = ?`),
    purgeDeletionsOn: db.prepare(`DELETE FROM replica_deletions WHERE datanode_id = ?`),
    purgeIntentsOn: db.prepare(`DELETE FROM write_intents WHERE datanode_id = ?`),
  };
}

export function deletionQueue(db: Db) {
  const s = deletionStatements(db);
  /** addWriteIntents' steps: a deletion queued for the same file goes (it is being written again). */
  const addIntents = (fragmentId: string, datanodeIds: string[]) => {
    for (const d of datanodeIds) {
      s.unqueue.run(fragmentId, d);
      s.addIntent.run(fragmentId, d);
    }
  };

  const ack = (d: QueuedDeletion) =>
    s.ack.run({ fragmentId: d.fragmentId, datanodeId: d.datanodeId, reason: d.reason, imageKey: d.imageKey });

  const queries: DeletionQueue = {
    addWriteIntents: db.transaction((fragmentId: string, datanodeIds: string[]) => addIntents(fragmentId, datanodeIds)),
    releaseWriteIntents: db.transaction((fragmentId: string, datanodeIds: string[], now: number) => {
      for (const d of datanodeIds) {
        if (s.dropIntent.run(fragmentId, d).changes > 0) s.intentToDeletion.run({ fragmentId, datanodeId: d, now });
      }
    }),
    releaseAllWriteIntents: db.transaction((now: number): ReleasedIntents => {
      const recorded = s.recordedIntents.get()!.n;
      s.allIntentsToDeletions.run(now);
      return { deletions: s.dropAllIntents.run().changes - recorded, recorded };
    }),
    deletionTargetsOf: (fragmentId) => s.targets.all(fragmentId, fragmentId).map((x) => x.datanodeId),
    dueDeletions: (now, limit = 256) => s.due.all(now, limit),
    ackDeletion: (d) => void ack(d),
    ackDeletions: db.transaction((ds: QueuedDeletion[]) => {
      for (const d of ds) ack(d);
    }),
    retryDeletionAt: (d, notBefore) => void s.retry.run(notBefore, d.fragmentId, d.datanodeId),
    postponeDeletion: (d, notBefore) => void s.postpone.run(notBefore, d.fragmentId, d.datanodeId),
    resumeDeletionsOn: (datanodeId, now) => s.resumeOn.run(now, datanodeId, now).changes,
    settleRecordedWrites: db.transaction((keys: ReplicaKey[]) =>
      keys.filter((k) => s.settleRecordedWrite.run({ fragmentId: k.fragmentId, datanodeId: k.datanodeId }).changes > 0),
    ),
    pendingDeletionCount: () => s.pending.get()!.n,
    purgeDeletionsOn: db.transaction((datanodeId: string) => {
      s.purgeDeletionsOn.run(datanodeId);
      s.purgeIntentsOn.run(datanodeId);
    }),
  };

  /** The steps the catalog's transactions combine with images and fragments. */
  const steps = {
    addIntents,
    /** Queues the deletion of one file; `imageKey` when it belongs to a deleted image (the datanode's proof to delete it). */
    queue: (key: ReplicaKey, now: number, reason: DeletionReason, imageKey: string | null = null) =>
      s.queue.run(key.fragmentId, key.datanodeId, now, reason, imageKey),
    queueReplicasOfFragment: (fragmentId: string, now: number) => s.queueReplicasOfFragment.run(now, fragmentId),
    queueReplicasOfImage: (imageId: number, now: number, reason: DeletionReason, imageKey: string | null) =>
      s.queueReplicasOfImage.run(now, reason, imageKey, imageId),
    /** The file is a recorded replica: neither to delete nor in flight any more. */
    settle: (fragmentId: string, datanodeId: string) => {
      s.unqueue.run(fragmentId, datanodeId);
      s.dropIntent.run(fragmentId, datanodeId);
    },
    /** A deletion or a write in flight is queued for the file. */
    isQueued: (fragmentId: string, datanodeId: string) => s.isQueued.get(fragmentId, datanodeId, fragmentId, datanodeId) !== undefined,
  };
  return { queries, steps };
}
