// Images, open uploads, fragments and replicas in the index, and the queue of replica files
// to delete. Every multi-row change is one SQLite transaction, so a failed call changes nothing.
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Db } from './database.ts';
import { TesseraError } from '../errors.ts';
import { prefixUpperBound } from '../names.ts';
import type { ImageFormat } from '../renditions/media.ts';

export interface ImageRow {
  id: number;
  /** Random and never reused: the image's id on the datanodes (its manifest and tombstone). */
  imageKey: string;
  name: string;
  state: 'uploading' | 'stored';
  uploadId: string | null;
  size: number;
  contentType: string;
  sha256: string | null;
  fragmentSize: number;
  fragmentCount: number;
  createdAt: number;
  expiresAt: number | null;
  /** Detected from the bytes (renditions/media.ts); null for a non-image. */
  format: ImageFormat | null;
  /** As a viewer shows it (after EXIF orientation); null for a non-image. */
  width: number | null;
  height: number | null;
  orientation: number | null;
  /** 0 for an image stored before detection existed: detected on first read. */
  mediaChecked: number;
}

/** What detection learnt of an image's bytes; all null for a non-image. */
export type ImageMediaColumns = Pick<ImageRow, 'format' | 'width' | 'height' | 'orientation'>;

export interface FragmentRow {
  id: string;
  imageId: number;
  idx: number;
  size: number;
  sha256: string;
}

export interface FragmentWithReplicas extends FragmentRow {
  /** Datanode ids holding a verified copy. */
  replicas: string[];
}

export interface ReplicaDeletion {
  fragmentId: string;
  datanodeId: string;
  attempts: number;
  /** Why the file goes (logged with the deletion; see DeletionReason). */
  reason: string;
  /** Set when the file belongs to a deleted image or upload: the datanode's proof to delete it. */
  imageKey: string | null;
}

/** Why a replica file is queued for deletion. */
export type DeletionReason = 'image-deleted' | 'upload-aborted' | 'upload-expired' | 'fragment-replaced' | 'surplus-replica' | 'orphan' | 'unrecorded-write' | 'rendition-evicted';

/** `not_before` of a write in flight: never due until released or the coordinator restarts. */
export const INTENT = Number.MAX_SAFE_INTEGER;

const IMAGE_COLUMNS = `id, image_key AS imageKey, name, state, upload_id AS uploadId, size, content_type AS contentType, sha256,
  fragment_size AS fragmentSize, fragment_count AS fragmentCount, created_at AS createdAt, expires_at AS expiresAt,
  format, width, height, orientation, media_checked AS mediaChecked`;

/** 128 random bits: an image key never repeats, so a tombstone can only ever kill its own image. */
export const newImageKey = () => randomBytes(16).toString('base64url');

const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

export function catalog(db: Db) {
  const s = {
    insertUpload: db.prepare(`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256, fragment_size, fragment_count, created_at, expires_at,
        format, width, height, orientation, media_checked)
      VALUES (@imageKey, @name, 'uploading', @uploadId, @size, @contentType, @sha256, @fragmentSize, @fragmentCount, @createdAt, @expiresAt,
        @format, @width, @height, @orientation, @mediaChecked)`),
    setMedia: db.prepare(`UPDATE images SET format = @format, width = @width, height = @height, orientation = @orientation, media_checked = 1,
      content_type = coalesce(@contentType, content_type) WHERE id = @id`),
    imageByKey: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE image_key = ?`),
    storedImages: db.prepare<[], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE state = 'stored'`),
    insertStored: db.prepare(`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256, fragment_size, fragment_count, created_at, expires_at)
      VALUES (@imageKey, @name, 'stored', NULL, @size, @contentType, @sha256, @fragmentSize, @fragmentCount, @createdAt, NULL)`),
    imageCount: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM images`),
    imageHoldingName: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE name = ?`),
    uploadById: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE upload_id = ? AND state = 'uploading'`),
    imageByName: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE name = ? AND state = 'stored'`),
    imageById: db.prepare<[number], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id = ?`),
    touchUpload: db.prepare(`UPDATE images SET expires_at = ? WHERE id = ? AND state = 'uploading'`),
    fragments: db.prepare<[number], FragmentRow>(`SELECT id, image_id AS imageId, idx, size, sha256 FROM fragments WHERE image_id = ? ORDER BY idx`),
    fragmentAt: db.prepare<[number, number], FragmentRow>(`SELECT id, image_id AS imageId, idx, size, sha256 FROM fragments WHERE image_id = ? AND idx = ?`),
    replicasOfImage: db.prepare<[number], { fragmentId: string; datanodeId: string }>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId FROM replicas r JOIN fragments f ON f.id = r.fragment_id WHERE f.image_id = ?`),
    fragmentsInRange: db.prepare<[number, number, number], FragmentRow>(
      `SELECT id, image_id AS imageId, idx, size, sha256 FROM fragments WHERE image_id = ? AND idx BETWEEN ? AND ? ORDER BY idx`),
    replicasInRange: db.prepare<[number, number, number], { fragmentId: string; datanodeId: string }>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId FROM fragments f JOIN replicas r ON r.fragment_id = f.id
       WHERE f.image_id = ? AND f.idx BETWEEN ? AND ?`),
    replicasOfFragment: db.prepare<[string], { datanodeId: string }>(`SELECT datanode_id AS datanodeId FROM replicas WHERE fragment_id = ? ORDER BY datanode_id`),
    fragmentExists: db.prepare(`SELECT 1 FROM fragments WHERE id = ?`),
    receivedIndexes: db.prepare<[number], { idx: number }>(`SELECT idx FROM fragments WHERE image_id = ? ORDER BY idx`),
    insertFragment: db.prepare(`INSERT INTO fragments (id, image_id, idx, size, sha256) VALUES (@id, @imageId, @idx, @size, @sha256)`),
    deleteFragment: db.prepare(`DELETE FROM fragments WHERE id = ?`),
    insertReplica: db.prepare(`INSERT OR IGNORE INTO replicas (fragment_id, datanode_id) VALUES (?, ?)`),
    deleteReplica: db.prepare(`DELETE FROM replicas WHERE fragment_id = ? AND datanode_id = ?`),
    doomReplicasOfFragment: db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason)
      SELECT fragment_id, datanode_id, ?, 0, 'fragment-replaced' FROM replicas WHERE fragment_id = ?`),
    doomReplicasOfImage: db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key)
      SELECT r.fragment_id, r.datanode_id, ?, 0, ?, ? FROM replicas r JOIN fragments f ON f.id = r.fragment_id WHERE f.image_id = ?`),
    doom: db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason) VALUES (?, ?, ?, 0, ?)`),
    doomDeleted: db.prepare(`INSERT OR REPLACE INTO replica_deletions (fragment_id, datanode_id, not_before, attempts, reason, image_key) VALUES (?, ?, ?, 0, 'image-deleted', ?)`),
    undoom: db.prepare(`DELETE FROM replica_deletions WHERE fragment_id = ? AND datanode_id = ?`),
    ackDeletion: db.prepare(`DELETE FROM replica_deletions WHERE fragment_id = ? AND datanode_id = ? AND not_before <> ${INTENT}`),
    releaseIntent: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE fragment_id = ? AND datanode_id = ? AND not_before = ${INTENT}`),
    releaseAllIntents: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE not_before = ${INTENT}`),
    dueDeletions: db.prepare<[number, number], ReplicaDeletion>(`SELECT fragment_id AS fragmentId, datanode_id AS datanodeId, attempts, reason, image_key AS imageKey
      FROM replica_deletions WHERE not_before <= ? ORDER BY not_before LIMIT ?`),
    resumeDeletionsOn: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE datanode_id = ? AND not_before > ? AND not_before <> ${INTENT}`),
    postponeDeletion: db.prepare(`UPDATE replica_deletions SET not_before = ? WHERE fragment_id = ? AND datanode_id = ? AND not_before <> ${INTENT}`),
    retryDeletion: db.prepare(`UPDATE replica_deletions SET attempts = attempts + 1, not_before = ? WHERE fragment_id = ? AND datanode_id = ? AND not_before <> ${INTENT}`),
    pendingDeletions: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM replica_deletions WHERE not_before <> ${INTENT}`),
    complete: db.prepare(`UPDATE images SET state = 'stored', upload_id = NULL, expires_at = NULL, sha256 = ?, created_at = ? WHERE id = ? AND state = 'uploading'`),
    deleteImage: db.prepare(`DELETE FROM images WHERE id = ?`),
    renditionsOf: db.prepare<[number], { id: number }>(`SELECT rendition_image_id AS id FROM renditions WHERE source_image_id = ?`),
    expiredUploads: db.prepare<[number], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE state = 'uploading' AND expires_at <= ?`),
    totals: db.prepare<[], { imageCount: number; storedBytes: number }>(
      `SELECT count(*) AS imageCount, coalesce(sum(size), 0) AS storedBytes FROM images WHERE state = 'stored' AND name >= ' '`),
    underReplicated: db.prepare<[string, number], { n: number }>(`SELECT count(*) AS n FROM fragments f JOIN images i ON i.id = f.image_id
      WHERE i.state = 'stored' AND (SELECT count(*) FROM replicas r JOIN datanodes d ON d.id = r.datanode_id
        WHERE r.fragment_id = f.id AND d.status IN ('UP', 'DEGRADED') AND d.id NOT IN (SELECT value FROM json_each(?))) < ?`),
  };

  const r = {
    fragmentById: db.prepare<[string], FragmentRow>(`SELECT id, image_id AS imageId, idx, size, sha256 FROM fragments WHERE id = ?`),
    fragmentsOn: db.prepare<[string, number], FragmentRow>(`SELECT f.id, f.image_id AS imageId, f.idx, f.size, f.sha256 FROM replicas r
      JOIN fragments f ON f.id = r.fragment_id WHERE r.datanode_id = ? LIMIT ?`),
    replicaIdsOn: db.prepare<[string], { id: string }>(`SELECT fragment_id AS id FROM replicas WHERE datanode_id = ?`),
    replicaCountOn: db.prepare<[string], { n: number }>(`SELECT count(*) AS n FROM replicas WHERE datanode_id = ?`),
    replicaPage: db.prepare<[string, string, number], { fragmentId: string; datanodeId: string; size: number; sha256: string }>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId, f.size, f.sha256 FROM replicas r JOIN fragments f ON f.id = r.fragment_id
       WHERE (r.fragment_id, r.datanode_id) > (?, ?) ORDER BY r.fragment_id, r.datanode_id LIMIT ?`),
    hasReplica: db.prepare<[string, string], { one: number }>(`SELECT 1 AS one FROM replicas WHERE fragment_id = ? AND datanode_id = ?`),
    hasDeletion: db.prepare<[string, string], { one: number }>(`SELECT 1 AS one FROM replica_deletions WHERE fragment_id = ? AND datanode_id = ?`),
    purgeDeletionsOn: db.prepare(`DELETE FROM replica_deletions WHERE datanode_id = ?`),
    deletionTargets: db.prepare<[string], { datanodeId: string }>(`SELECT datanode_id AS datanodeId FROM replica_deletions WHERE fragment_id = ?`),
  };

  const withReplicas = (fragments: FragmentRow[], replicas: { fragmentId: string; datanodeId: string }[]): FragmentWithReplicas[] => {
    const byFragment = new Map<string, string[]>();
    for (const r of replicas) {
      const list = byFragment.get(r.fragmentId);
      if (list) list.push(r.datanodeId);
      else byFragment.set(r.fragmentId, [r.datanodeId]);
    }
    return fragments.map((f) => ({ ...f, replicas: byFragment.get(f.id) ?? [] }));
  };

  const listing = (prefix: string | undefined, after: string | undefined) => {
    // Cached renditions are images under names that start with a control character, which no
    // user-given name does: listings start at ' ' so they never show them.
    const where = [`state = 'stored'`, `name >= ' '`];
    const params: string[] = [];
    if (prefix) {
      where.push('name >= ?');
      params.push(prefix);
      const upper = prefixUpperBound(prefix);
      if (upper !== undefined) {
        where.push('name < ?');
        params.push(upper);
      }
    }
    if (after !== undefined) {
      where.push('name > ?');
      params.push(after);
    }
    return { where: where.join(' AND '), params };
  };
  // Four shapes of the listing query (with or without prefix bound / cursor): prepared lazily, once.
  const listCache = new Map<string, Database.Statement<unknown[]>>();
  const cached = (sql: string) => {
    let stmt = listCache.get(sql);
    if (!stmt) listCache.set(sql, (stmt = db.prepare<unknown[]>(sql)));
    return stmt;
  };

  const self = {
    /** Reserves the name for a new upload; IMAGE_ALREADY_EXISTS when an image or upload holds it. */
    insertUpload(row: Omit<ImageRow, 'id' | 'state' | 'imageKey' | keyof ImageMediaColumns | 'mediaChecked'> & Partial<ImageMediaColumns> & { uploadId: string; imageKey?: string; mediaChecked?: number }): ImageRow {
      try {
        const media = { format: row.format ?? null, width: row.width ?? null, height: row.height ?? null, orientation: row.orientation ?? null, mediaChecked: row.mediaChecked ?? 0 };
        const { lastInsertRowid } = s.insertUpload.run({ ...row, ...media, imageKey: row.imageKey ?? newImageKey() });
        return s.imageById.get(Number(lastInsertRowid))!;
      } catch (err) {
        if (isUniqueViolation(err)) throw new TesseraError('IMAGE_ALREADY_EXISTS', `"${row.name}" is already a stored image or an open upload.`);
        throw err;
      }
    },
    uploadById: (uploadId: string) => s.uploadById.get(uploadId),
    /** Records what detection found; `contentType` (when given) replaces the stored one. */
    setMedia: (id: number, media: ImageMediaColumns, contentType?: string) => s.setMedia.run({ ...media, contentType: contentType ?? null, id }),
    imageByName: (name: string) => s.imageByName.get(name),
    imageById: (id: number) => s.imageById.get(id),
    receivedIndexes: (imageId: number) => s.receivedIndexes.all(imageId).map((r) => r.idx),
    fragments: (imageId: number) => s.fragments.all(imageId),
    replicasOf: (fragmentId: string) => s.replicasOfFragment.all(fragmentId).map((r) => r.datanodeId),

    fragmentsWithReplicas(imageId: number): FragmentWithReplicas[] {
      return withReplicas(s.fragments.all(imageId), s.replicasOfImage.all(imageId));
    },
    /**
     * Fragments `first`..`last` (inclusive, by index) of an image with their replicas: what a
     * Range request or fragmentData reads, found through the (image_id, idx) index without
     * loading the image's other fragment rows.
     */
    fragmentsInRange(imageId: number, first: number, last: number): FragmentWithReplicas[] {
      return withReplicas(s.fragmentsInRange.all(imageId, first, last), s.replicasInRange.all(imageId, first, last));
    },


    listImages({ first, after, prefix }: { first: number; after?: string; prefix?: string }): ImageRow[] {
      const { where, params } = listing(prefix, after);
      return cached(`SELECT ${IMAGE_COLUMNS} FROM images WHERE ${where} ORDER BY name LIMIT ?`).all(...params, first) as ImageRow[];
    },
    countImages(prefix?: string): number {
      const { where, params } = listing(prefix, undefined);
      return (cached(`SELECT count(*) AS n FROM images WHERE ${where}`).get(...params) as { n: number }).n;
    },
    totals: () => s.totals.get()!,
    /** Fragments of stored images with fewer than `factor` replicas on live datanodes, not counting `excluded` ones (draining). */
    underReplicatedCount: (factor: number, excluded: string[] = []) => s.underReplicated.get(JSON.stringify(excluded), factor)!.n,

    /** Records, before a write starts, that `fragmentId` may land on these datanodes. */
    addWriteIntents: db.transaction((fragmentId: string, datanodeIds: string[]) => {
      for (const d of datanodeIds) s.doom.run(fragmentId, d, INTENT, 'unrecorded-write');
    }),
    /** A write that will not be recorded: whatever reached the datanodes is deleted. */
    releaseWriteIntents: db.transaction((fragmentId: string, datanodeIds: string[], now: number) => {
      for (const d of datanodeIds) s.releaseIntent.run(now, fragmentId, d);
    }),
    /** After a restart no write is in flight: every intent left is a write that may have half-happened. */
    releaseAllWriteIntents: (now: number) => s.releaseAllIntents.run(now).changes,

    /**
     * Records fragment `idx` of an open upload as stored on `datanodeIds`, replacing an earlier
     * one (whose replicas are queued for deletion): 'replaced' then, else 'new'. False when the
     * upload is gone meanwhile.
     */
    recordFragment: db.transaction((fragment: FragmentRow, datanodeIds: string[], expiresAt: number, now: number): false | 'new' | 'replaced' => {
      const image = s.imageById.get(fragment.imageId);
      // An upload that expired while this fragment was being written stays expired.
      if (!image || image.state !== 'uploading' || (image.expiresAt ?? 0) <= now) return false;
      const previous = s.fragmentAt.get(fragment.imageId, fragment.idx);
      if (previous) {
        s.doomReplicasOfFragment.run(now, previous.id);
        s.deleteFragment.run(previous.id);
      }
      s.insertFragment.run(fragment);
      for (const d of datanodeIds) {
        s.insertReplica.run(fragment.id, d);
        s.undoom.run(fragment.id, d);
      }
      s.touchUpload.run(expiresAt, fragment.imageId);
      return previous ? 'replaced' : 'new';
    }),

    /** Flips an upload into a visible image, if its fragment set is still exactly `fragmentIds`. */
    completeUpload: db.transaction((imageId: number, fragmentIds: string[], sha256: string, now: number): 'done' | 'changed' | 'gone' => {
      // `now` is the image's createdAt: the one its manifest on the datanodes carries.
      const image = s.imageById.get(imageId);
      if (!image || image.state !== 'uploading') return 'gone';
      const current = s.fragments.all(imageId).map((f) => f.id);
      if (current.length !== fragmentIds.length || current.some((id, i) => id !== fragmentIds[i])) return 'changed';
      s.complete.run(sha256, now, imageId);
      return 'done';
    }),

    /**
     * A one-fragment upload's fragment recorded and the upload completed in one transaction (one
     * WAL commit instead of two): false when the upload is gone, else completeUpload's outcome.
     */
    recordOnlyFragmentAndComplete: db.transaction((fragment: FragmentRow, datanodeIds: string[], sha256: string, now: number): false | 'done' | 'changed' | 'gone' => {
      // Nested better-sqlite3 transactions are savepoints inside this one.
      if (!self.recordFragment(fragment, datanodeIds, now, now)) return false;
      return self.completeUpload(fragment.imageId, [fragment.id], sha256, now);
    }),

    /** Removes an image or upload from the index and queues all of its replica files for deletion. */
    deleteImage: db.transaction((imageId: number, now: number, reason: DeletionReason = 'image-deleted') => {
      const image = s.imageById.get(imageId);
      if (!image) return false;
      // An image's cached renditions go with it, whichever path deletes it.
      for (const r of s.renditionsOf.all(imageId)) {
        s.doomReplicasOfImage.run(now, 'rendition-evicted', null, r.id);
        s.deleteImage.run(r.id);
      }
      // Only a deleted image's files carry its key (the datanodes' proof to delete them): an
      // upload aborted or expired after its manifest reached the datanodes is stored as far as
      // they know, so its files stay until the index learns it back.
      s.doomReplicasOfImage.run(now, reason, reason === 'image-deleted' ? image.imageKey : null, imageId);
      return s.deleteImage.run(imageId).changes > 0;
    }),

    imageByKey: (key: string) => s.imageByKey.get(key),
    storedImages: () => s.storedImages.all(),
    imageCount: () => s.imageCount.get()!.n,
    /** The stored image or open upload holding the name. */
    imageHoldingName: (name: string) => s.imageHoldingName.get(name),
    /** Runs `fn` as one transaction (one sync for many small changes: the rebuild's batches). */
    inTransaction: <T>(fn: () => T): T => db.transaction(fn)(),
    /**
     * A stored image rebuilt from a datanode manifest: its row, its fragments, and the replicas
     * found on the datanodes. False when the name or key is taken meanwhile.
     */
    insertRebuiltImage: db.transaction((image: Omit<ImageRow, 'id' | 'state' | 'uploadId' | 'expiresAt' | 'fragmentCount' | 'sha256' | keyof ImageMediaColumns | 'mediaChecked'> & { sha256: string }, fragments: { id: string; idx: number; size: number; sha256: string; replicas: string[] }[]): boolean => {
      try {
        const { lastInsertRowid } = s.insertStored.run({ ...image, fragmentCount: fragments.length });
        for (const f of fragments) {
          s.insertFragment.run({ id: f.id, imageId: Number(lastInsertRowid), idx: f.idx, size: f.size, sha256: f.sha256 });
          for (const d of f.replicas) {
            s.insertReplica.run(f.id, d);
            s.undoom.run(f.id, d);
          }
        }
        return true;
      } catch (err) {
        if (isUniqueViolation(err) || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
        throw err;
      }
    }),

    expiredUploads: (now: number) => s.expiredUploads.all(now),

    fragmentById: (id: string) => r.fragmentById.get(id),
    /** Datanodes with a deletion (or a write in flight) queued for this fragment. */
    deletionTargetsOf: (fragmentId: string) => r.deletionTargets.all(fragmentId).map((x) => x.datanodeId),
    /** Up to `limit` fragments with a replica on the datanode. */
    fragmentsOn: (datanodeId: string, limit: number) => r.fragmentsOn.all(datanodeId, limit),
    replicaIdsOn: (datanodeId: string) => new Set(r.replicaIdsOn.all(datanodeId).map((x) => x.id)),
    replicaCountOn: (datanodeId: string) => r.replicaCountOn.get(datanodeId)!.n,
    /** Replicas in (fragment, datanode) order after the given key: the scrubber's cursor. */
    replicaPage: (after: { fragmentId: string; datanodeId: string }, limit: number) => r.replicaPage.all(after.fragmentId, after.datanodeId, limit),
    /** Whether the index accounts for this file on this datanode: a replica, a queued deletion or a write in flight. */
    accountsFor: (fragmentId: string, datanodeId: string) =>
      r.hasReplica.get(fragmentId, datanodeId) !== undefined || r.hasDeletion.get(fragmentId, datanodeId) !== undefined,
    /** Queues the deletion of a file no row accounts for (an orphan). */
    doomOrphan: (fragmentId: string, datanodeId: string, now: number, deletedImageKey?: string) =>
      deletedImageKey ? s.doomDeleted.run(fragmentId, datanodeId, now, deletedImageKey) : s.doom.run(fragmentId, datanodeId, now, 'orphan'),

    /** Moves a fragment's replicas: adds `added`, forgets `dropped` (their files queued for deletion); false when the fragment is gone. */
    moveReplicas: db.transaction((fragmentId: string, added: string[], dropped: string[], now: number): boolean => {
      if (s.fragmentExists.get(fragmentId) === undefined) return false;
      for (const d of added) {
        s.insertReplica.run(fragmentId, d);
        s.undoom.run(fragmentId, d);
      }
      for (const d of dropped) {
        s.deleteReplica.run(fragmentId, d);
        s.doom.run(fragmentId, d, now, 'surplus-replica');
      }
      return true;
    }),
    /** Before a datanode leaves the index: its queued deletions can never be acknowledged. */
    purgeDeletionsOn: (datanodeId: string) => r.purgeDeletionsOn.run(datanodeId),

    dueDeletions: (now: number, limit = 256) => s.dueDeletions.all(now, limit),
    /** The datanode deleted the file. A write intent put in the row's place meanwhile (a repair copying the fragment back there) stays. */
    ackDeletion: (d: { fragmentId: string; datanodeId: string }) => s.ackDeletion.run(d.fragmentId, d.datanodeId),
    /** ackDeletion for many, in one transaction. */
    ackDeletions: db.transaction((ds: { fragmentId: string; datanodeId: string }[]) => {
      for (const d of ds) s.ackDeletion.run(d.fragmentId, d.datanodeId);
    }),
    retryDeletionAt: (d: { fragmentId: string; datanodeId: string }, notBefore: number) => s.retryDeletion.run(notBefore, d.fragmentId, d.datanodeId),
    /** Not tried (its datanode is DOWN): checked again later, without counting as a failed attempt. */
    postponeDeletion: (d: { fragmentId: string; datanodeId: string }, notBefore: number) => s.postponeDeletion.run(notBefore, d.fragmentId, d.datanodeId),
    /** A datanode is live again: every deletion waiting for it is due now. */
    resumeDeletionsOn: (datanodeId: string, now: number) => s.resumeDeletionsOn.run(now, datanodeId, now).changes,
    pendingDeletionCount: () => s.pendingDeletions.get()!.n,
  };
  return self;
}

export type Catalog = ReturnType<typeof catalog>;
