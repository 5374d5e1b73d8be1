// The index's metadata as one interface: images and open uploads, fragments and replicas, the
// queue of replica files to delete and the writes in flight. The queries live by subject in
// catalog/; the changes that span them are here, each one transaction, so a failed call changes
// nothing. createCatalog is the SQLite engine (synchronous, better-sqlite3); another engine
// implements the same Catalog.
import type { Db } from './database.ts';
import { imageRows, type ImageQueries, type NewUpload, type RebuiltImage } from './catalog/image-rows.ts';
import { fragmentRows, type FragmentQueries } from './catalog/fragment-rows.ts';
import { deletionQueue, type DeletionQueue } from './catalog/deletion-queue.ts';
import { isPrimaryKeyViolation, isUniqueViolation } from './catalog/sqlite-errors.ts';
import type { ImageFormat } from '../renditions/media.ts';
import type { Outbox } from './outbox.ts';

export { newImageKey } from './catalog/image-rows.ts';
export type { ReplicaKey } from './catalog/deletion-queue.ts';

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

/**
 * A fragment to record, with the key of the upload it belongs to: an image's id is reused on
 * SQLite once the newest row is deleted, so a fragment of an upload aborted while it arrived
 * would otherwise be recorded in the upload begun after it. Its key is never reused.
 */
export interface NewFragment extends FragmentRow {
  imageKey: string;
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
export type DeletionReason =
  | 'image-deleted'
  | 'upload-aborted'
  | 'upload-expired'
  | 'fragment-replaced'
  | 'surplus-replica'
  | 'orphan'
  | 'unrecorded-write'
  | 'rendition-evicted';

/** What deleteStoredImage removed: the image's key (its tombstone's) and the datanodes that held its files. */
export interface DeletedImage {
  imageKey: string;
  holders: string[];
}

/** A fragment found on the datanodes by an index rebuild, with the datanodes holding it. */
export interface RebuiltFragment {
  id: string;
  idx: number;
  size: number;
  sha256: string;
  replicas: string[];
}

/** Changes that span images, fragments and deletions: each is atomic in every engine. */
export interface CatalogChanges {
  /**
   * Records fragment `idx` of an open upload as stored on `datanodeIds`, replacing an earlier
   * one (whose replicas are queued for deletion): 'replaced' then, else 'new'. False when the
   * upload is gone (or expired) meanwhile, or its id now belongs to another (`fragment.imageKey`).
   */
  recordFragment(fragment: NewFragment, datanodeIds: string[], expiresAt: number, now: number): false | 'new' | 'replaced';
  /**
   * Flips an upload into a visible image, if its fragment set is still exactly `fragmentIds`.
   * `outbox` (metadata/outbox.ts): sent with the change when it is 'done', by an engine that can.
   */
  completeUpload(imageId: number, fragmentIds: string[], sha256: string, now: number, outbox?: Outbox): 'done' | 'changed' | 'gone';
  /**
   * insertUpload and addWriteIntents in one transaction: a one-fragment upload whose fragment id
   * and datanodes are chosen before its name is reserved (one commit where there were two). When
   * the name is held (IMAGE_ALREADY_EXISTS) no intent is recorded either.
   */
  insertUploadWithIntents(row: NewUpload, fragmentId: string, datanodeIds: string[]): ImageRow;
  /** A one-fragment upload's fragment recorded and the upload completed at once: false when the upload is gone, else completeUpload's outcome. */
  recordOnlyFragmentAndComplete(
    fragment: NewFragment,
    datanodeIds: string[],
    sha256: string,
    now: number,
    outbox?: Outbox,
  ): false | 'done' | 'changed' | 'gone';
  /**
   * Removes an image or upload from the index and queues all of its replica files for deletion.
   * `outbox`: sent with the change when it happened (true), by an engine that can.
   */
  deleteImage(imageId: number, now: number, reason?: DeletionReason, outbox?: Outbox): boolean;
  /**
   * deleteImage ('image-deleted') of the stored image named `name`, found in the same
   * transaction: its key and the datanodes that held its files, or undefined when there is none.
   * One call where a look-up, a read of the replicas and a deletion were three.
   */
  deleteStoredImage(name: string, now: number, outbox?: Outbox): DeletedImage | undefined;
  /** A stored image rebuilt from a datanode manifest, its fragments and replicas. False when the name or key is taken meanwhile. */
  insertRebuiltImage(image: RebuiltImage, fragments: RebuiltFragment[]): boolean;
  /** Moves a fragment's replicas: adds `added`, forgets `dropped` (their files queued for deletion); false when the fragment is gone. */
  moveReplicas(fragmentId: string, added: string[], dropped: string[], now: number): boolean;
  /** Whether the index accounts for this file on this datanode: a replica, a queued deletion or a write in flight. */
  accountsFor(fragmentId: string, datanodeId: string): boolean;
  /** Queues the deletion of a file no row accounts for (an orphan; with the key of its deleted image when known). */
  doomOrphan(fragmentId: string, datanodeId: string, now: number, deletedImageKey?: string): void;
  /** insertRebuiltImage for each, in one transaction (one sync for many small changes: the rebuild's batches). */
  insertRebuiltImages(batch: { image: RebuiltImage; fragments: RebuiltFragment[] }[]): boolean[];
  /**
   * Releases (as releaseAllWriteIntents) the write intents of other coordinators that stopped
   * (their ids); answers how many. One SQLite coordinator has no others: 0.
   */
  releaseWriteIntentsOf(coordinatorIds: string[], now: number): number;
  /**
   * Runs `fn` as one transaction. SQLite only, and going away: the asynchronous interface
   * (store.ts) has no such method; use a method that is one transaction (insertRebuiltImages).
   */
  inTransaction<T>(fn: () => T): T;
}

export interface Catalog extends ImageQueries, FragmentQueries, DeletionQueue, CatalogChanges {}

/** The catalog on the SQLite index. */
export function createCatalog(db: Db): Catalog {
  const images = imageRows(db);
  const fragments = fragmentRows(db);
  const deletions = deletionQueue(db);
  return { ...images.queries, ...fragments.queries, ...deletions.queries, ...catalogChanges(db, images, fragments, deletions) };
}

/** Records the replicas of a fragment: no longer to delete nor in flight there. */
function replicaAdder(fragments: ReturnType<typeof fragmentRows>, deletions: ReturnType<typeof deletionQueue>) {
  return (fragmentId: string, datanodeIds: string[]) => {
    for (const d of datanodeIds) {
      fragments.steps.insertReplica(fragmentId, d);
      deletions.steps.settle(fragmentId, d);
    }
  };
}

/** The SQLite transactions of an upload: its name reserved (with its write intents when one-fragment), its fragments recorded, then its completion. */
function uploadChanges(
  db: Db,
  images: ReturnType<typeof imageRows>,
  fragments: ReturnType<typeof fragmentRows>,
  deletions: ReturnType<typeof deletionQueue>,
): Pick<CatalogChanges, 'insertUploadWithIntents' | 'recordFragment' | 'completeUpload' | 'recordOnlyFragmentAndComplete'> {
  const image = images.steps;
  const fragment = fragments.steps;
  const deletion = deletions.steps;
  const addReplicas = replicaAdder(fragments, deletions);

  /** recordFragment's steps; `expiresAt` undefined: the upload completes in the same transaction (its expiry is cleared there). */
  const recordFragmentIn = (
    row: NewFragment,
    datanodeIds: string[],
    expiresAt: number | undefined,
    now: number,
  ): false | 'new' | 'replaced' => {
    const upload = image.uploadState(row.imageId);
    // An upload that expired while this fragment was being written stays expired; another upload
    // holding its id since (the id of a deleted newest row is reused) is not it.
    if (!upload || upload.imageKey !== row.imageKey || upload.state !== 'uploading' || (upload.expiresAt ?? 0) <= now) return false;
    const previous = fragment.fragmentAt(row.imageId, row.idx);
    if (previous) {
      deletion.queueReplicasOfFragment(previous.id, now);
      fragment.deleteFragment(previous.id);
    }
    fragment.insertFragment({ id: row.id, imageId: row.imageId, idx: row.idx, size: row.size, sha256: row.sha256 });
    addReplicas(row.id, datanodeIds);
    if (expiresAt !== undefined) image.touchUpload(row.imageId, expiresAt);
    return previous ? 'replaced' : 'new';
  };

  /** completeUpload's steps, after the upload was checked open (`checked`) in the same transaction or not. */
  const completeIn = (
    imageId: number,
    fragmentIds: string[],
    sha256: string,
    now: number,
    checked: boolean,
  ): 'done' | 'changed' | 'gone' => {
    // `now` is the image's createdAt: the one its manifest on the datanodes carries.
    if (!checked) {
      const upload = image.uploadState(imageId);
      if (!upload || upload.state !== 'uploading') return 'gone';
    }
    const current = fragment.fragmentIds(imageId);
    if (current.length !== fragmentIds.length || current.some((id, i) => id !== fragmentIds[i])) return 'changed';
    image.complete(imageId, sha256, now);
    return 'done';
  };

  return {
    insertUploadWithIntents: db.transaction((row: NewUpload, fragmentId: string, datanodeIds: string[]) => {
      const inserted = images.queries.insertUpload(row);
      deletion.addIntents(fragmentId, datanodeIds);
      return inserted;
    }),
    recordFragment: db.transaction((row: NewFragment, datanodeIds: string[], expiresAt: number, now: number) =>
      recordFragmentIn(row, datanodeIds, expiresAt, now),
    ),
    completeUpload: db.transaction((imageId: number, fragmentIds: string[], sha256: string, now: number) =>
      completeIn(imageId, fragmentIds, sha256, now, false),
    ),
    // One WAL commit instead of two, and no savepoints: the steps of both in one transaction.
    recordOnlyFragmentAndComplete: db.transaction((row: NewFragment, datanodeIds: string[], sha256: string, now: number) => {
      if (!recordFragmentIn(row, datanodeIds, undefined, now)) return false;
      return completeIn(row.imageId, [row.id], sha256, now, true);
    }),
  };
}

/** The SQLite transactions of CatalogChanges, made of the subject modules' steps. */
function catalogChanges(
  db: Db,
  images: ReturnType<typeof imageRows>,
  fragments: ReturnType<typeof fragmentRows>,
  deletions: ReturnType<typeof deletionQueue>,
): CatalogChanges {
  const image = images.steps;
  const fragment = fragments.steps;
  const deletion = deletions.steps;
  const addReplicas = replicaAdder(fragments, deletions);
  // A savepoint inside insertRebuiltImages' transaction: a taken name undoes this image only.
  const insertRebuiltImage = db.transaction((rebuilt: RebuiltImage, found: RebuiltFragment[]): boolean => {
    try {
      const imageId = image.insertStored(rebuilt, found.length);
      for (const f of found) {
        fragment.insertFragment({ id: f.id, imageId, idx: f.idx, size: f.size, sha256: f.sha256 });
        addReplicas(f.id, f.replicas);
      }
      return true;
    } catch (err) {
      if (isUniqueViolation(err) || isPrimaryKeyViolation(err)) return false;
      throw err;
    }
  });

  /** An image's row goes and its files (its renditions' too) are queued for deletion; inside a transaction. */
  const deleteImageRow = (row: Pick<ImageRow, 'id' | 'imageKey'>, now: number, reason: DeletionReason): boolean => {
    // An image's cached renditions go with it, whichever path deletes it.
    for (const renditionId of image.renditionsOf(row.id)) {
      deletion.queueReplicasOfImage(renditionId, now, 'rendition-evicted', null);
      image.deleteRow(renditionId);
    }
    // Only a deleted image's files carry its key (the datanodes' proof to delete them): an
    // upload aborted or expired after its manifest reached the datanodes is stored as far as
    // they know, so its files stay until the index learns it back.
    deletion.queueReplicasOfImage(row.id, now, reason, reason === 'image-deleted' ? row.imageKey : null);
    return image.deleteRow(row.id);
  };

  return {
    ...uploadChanges(db, images, fragments, deletions),
    deleteImage: db.transaction((imageId: number, now: number, reason: DeletionReason = 'image-deleted') => {
      const row = images.queries.imageById(imageId);
      return row ? deleteImageRow(row, now, reason) : false;
    }),
    deleteStoredImage: db.transaction((name: string, now: number): DeletedImage | undefined => {
      const row = image.storedKeyByName(name);
      if (!row) return undefined;
      const holders = fragment.holdersOf(row.id);
      return deleteImageRow(row, now, 'image-deleted') ? { imageKey: row.imageKey, holders } : undefined;
    }),
    insertRebuiltImage,
    insertRebuiltImages: db.transaction((batch: { image: RebuiltImage; fragments: RebuiltFragment[] }[]) =>
      batch.map((b) => insertRebuiltImage(b.image, b.fragments)),
    ),
    releaseWriteIntentsOf: () => 0,
    moveReplicas: db.transaction((fragmentId: string, added: string[], dropped: string[], now: number): boolean => {
      if (!fragment.fragmentExists(fragmentId)) return false;
      addReplicas(fragmentId, added);
      for (const d of dropped) {
        fragment.deleteReplica(fragmentId, d);
        deletion.queue({ fragmentId, datanodeId: d }, now, 'surplus-replica');
      }
      return true;
    }),
    accountsFor: (fragmentId, datanodeId) => fragment.hasReplica(fragmentId, datanodeId) || deletion.isQueued(fragmentId, datanodeId),
    doomOrphan: (fragmentId, datanodeId, now, deletedImageKey) =>
      void (deletedImageKey
        ? deletion.queue({ fragmentId, datanodeId }, now, 'image-deleted', deletedImageKey)
        : deletion.queue({ fragmentId, datanodeId }, now, 'orphan')),
    inTransaction: <T>(fn: () => T): T => db.transaction(fn)(),
  };
}
