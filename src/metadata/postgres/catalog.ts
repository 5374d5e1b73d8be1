// The catalog on PostgreSQL: the same Catalog as catalog.ts on SQLite, each change one
// transaction. SQLite has one writer, so a change read-then-wrote at leisure; here several
// coordinators write at once, so every change to an image first locks its row (SELECT ... FOR
// UPDATE): the fragments, completion and deletion of one upload happen one at a time, in the
// order their locks were granted, whichever coordinator runs them.
import type { DeletedImage, DeletionReason, ImageRow, NewFragment, RebuiltFragment } from '../catalog.ts';
import type { AsyncCatalog } from '../store.ts';
import type { Outbox } from '../outbox.ts';
import type { RebuiltImage } from '../catalog/image-rows.ts';
import { fenced, isUniqueViolation, transaction, type Q, type Sql, type Tx } from './connection.ts';
import { imageQueries, imageSteps, insertUploadOn } from './images.ts';
import { fragmentQueries, fragmentSteps } from './fragments.ts';
import { addWriteIntentsOn, deletionQueries, deletionSteps } from './deletions.ts';

type RecordOutcome = false | 'new' | 'replaced';
type CompleteOutcome = 'done' | 'changed' | 'gone';

async function recordFragmentIn(tx: Q, row: NewFragment, datanodeIds: string[], expiresAt: number, now: number): Promise<RecordOutcome> {
  // Sent together (postgres.js pipelines a transaction's statements): the fragment is read once the row lock is held.
  const [upload, previous] = await Promise.all([imageSteps.lock(tx, row.imageId), fragmentSteps.fragmentAt(tx, row.imageId, row.idx)]);
  // An upload that expired while this fragment was being written stays expired; a row holding its id
  // with another key is another upload (as on SQLite, see catalog.ts).
  if (!upload || upload.imageKey !== row.imageKey || upload.state !== 'uploading' || (upload.expiresAt ?? 0) <= now) return false;
  if (previous) {
    await deletionSteps.queueReplicasOfFragment(tx, previous.id, now);
    await fragmentSteps.deleteFragment(tx, previous.id);
  }
  await Promise.all([fragmentSteps.insertWithReplicas(tx, row, datanodeIds), imageSteps.touchUpload(tx, row.imageId, expiresAt)]);
  return previous ? 'replaced' : 'new';
}

async function completeUploadIn(tx: Q, imageId: number, fragmentIds: string[], sha256: string, now: number): Promise<CompleteOutcome> {
  // `now` is the image's createdAt: the one its manifest on the datanodes carries.
  const [upload, current] = await Promise.all([imageSteps.lock(tx, imageId), fragmentSteps.idsOf(tx, imageId)]);
  if (!upload || upload.state !== 'uploading') return 'gone';
  if (current.length !== fragmentIds.length || current.some((id, i) => id !== fragmentIds[i])) return 'changed';
  await imageSteps.complete(tx, imageId, sha256, now);
  return 'done';
}

/** A one-fragment upload's fragment recorded and the upload completed, on the transaction `tx`. */
export async function recordOnlyFragmentAndCompleteIn(tx: Q, row: NewFragment, datanodeIds: string[], sha256: string, now: number) {
  if (!(await recordFragmentIn(tx, row, datanodeIds, now, now))) return false;
  return completeUploadIn(tx, row.imageId, [row.id], sha256, now);
}

/** Runs `change` in one transaction; when it happened (`happened` of its answer), the outbox's event is sent in the same transaction. */
async function withOutbox<T>(sql: Sql, outbox: Outbox | undefined, happened: (answer: T) => boolean, change: (tx: Tx) => Promise<T>) {
  const answer = await transaction(sql, async (tx) => {
    const result = await change(tx);
    if (outbox && happened(result)) await tx`SELECT pg_notify(${outbox.channel}, ${outbox.payload})`;
    return result;
  });
  // Notifications go out at commit: only now is the event sent.
  if (outbox && happened(answer)) outbox.sent = true;
  return answer;
}

async function deleteImageIn(tx: Q, imageId: number, now: number, reason: DeletionReason): Promise<boolean> {
  const row = await imageSteps.lock(tx, imageId);
  return row ? deleteLockedImage(tx, row, now, reason) : false;
}

/** The image's row goes and its files (its renditions' too) are queued for deletion; its row is locked by `tx`. */
async function deleteLockedImage(tx: Q, row: ImageRow, now: number, reason: DeletionReason): Promise<boolean> {
  // An image's cached renditions go with it, whichever path deletes it.
  for (const renditionId of await imageSteps.renditionsOf(tx, row.id)) {
    await deletionSteps.queueReplicasOfImage(tx, renditionId, now, 'rendition-evicted', null);
    await imageSteps.deleteRow(tx, renditionId);
  }
  // Only a deleted image's files carry its key (the datanodes' proof to delete them); see catalog.ts.
  await deletionSteps.queueReplicasOfImage(tx, row.id, now, reason, reason === 'image-deleted' ? row.imageKey : null);
  return imageSteps.deleteRow(tx, row.id);
}

async function deleteStoredImageIn(tx: Q, name: string, now: number): Promise<DeletedImage | undefined> {
  // Sent together: the holders are read once the row lock is held (statements run in order).
  const [row, holders] = await Promise.all([imageSteps.lockStoredByName(tx, name), fragmentSteps.holdersOfStored(tx, name)]);
  if (!row || !(await deleteLockedImage(tx, row, now, 'image-deleted'))) return undefined;
  return { imageKey: row.imageKey, holders };
}

/** Inserts one rebuilt image in a savepoint: a name or key taken meanwhile undoes it alone and answers false. */
async function insertRebuiltIn(tx: Tx, rebuilt: RebuiltImage, found: RebuiltFragment[]): Promise<boolean> {
  try {
    await tx.savepoint(async (sp) => {
      const imageId = await imageSteps.insertStored(sp, rebuilt, found.length);
      for (const f of found)
        await fragmentSteps.insertWithReplicas(sp, { id: f.id, imageId, idx: f.idx, size: f.size, sha256: f.sha256 }, f.replicas);
    });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

async function moveReplicasIn(tx: Q, fragmentId: string, added: string[], dropped: string[], now: number): Promise<boolean> {
  if (!(await fragmentSteps.lockExisting(tx, fragmentId))) return false;
  await fragmentSteps.addReplicas(tx, fragmentId, added);
  if (dropped.length > 0) {
    await fragmentSteps.deleteReplicas(tx, fragmentId, dropped);
    await deletionSteps.queueMany(tx, fragmentId, dropped, now, 'surplus-replica');
  }
  return true;
}

/** The catalog on a PostgreSQL pool. */
export function createPostgresCatalog(sql: Sql, instanceId = ''): AsyncCatalog {
  const tx = <T>(fn: (tx: Tx) => Promise<T>) => transaction(sql, fn);
  const isDone = (answer: unknown) => answer === 'done';
  return {
    ...imageQueries(sql),
    ...fragmentQueries(sql),
    ...deletionQueries(sql, instanceId),
    insertUploadWithIntents: (row, fragmentId, datanodeIds) =>
      tx(async (t) => {
        const inserted = await insertUploadOn(t, row);
        await addWriteIntentsOn(t, fragmentId, datanodeIds, instanceId);
        return inserted;
      }),
    recordFragment: (row, datanodeIds, expiresAt, now) => tx((t) => recordFragmentIn(t, row, datanodeIds, expiresAt, now)),
    completeUpload: (imageId, fragmentIds, sha256, now, outbox?: Outbox) =>
      withOutbox(sql, outbox, isDone, (t) => completeUploadIn(t, imageId, fragmentIds, sha256, now)),
    recordOnlyFragmentAndComplete: (row, datanodeIds, sha256, now, outbox?: Outbox) =>
      withOutbox(sql, outbox, isDone, (t) => recordOnlyFragmentAndCompleteIn(t, row, datanodeIds, sha256, now)),
    deleteImage: (imageId, now, reason = 'image-deleted', outbox?: Outbox) =>
      withOutbox(
        sql,
        outbox,
        (deleted) => deleted,
        (t) => deleteImageIn(t, imageId, now, reason),
      ),
    deleteStoredImage: (name, now, outbox?: Outbox) =>
      withOutbox(
        sql,
        outbox,
        (deleted) => deleted !== undefined,
        (t) => deleteStoredImageIn(t, name, now),
      ),
    insertRebuiltImage: (image, fragments) => tx((t) => insertRebuiltIn(t, image, fragments)),
    insertRebuiltImages: (batch) =>
      tx(async (t) => {
        const answers: boolean[] = [];
        for (const entry of batch) answers.push(await insertRebuiltIn(t, entry.image, entry.fragments));
        return answers;
      }),
    moveReplicas: (fragmentId, added, dropped, now) => tx((t) => moveReplicasIn(t, fragmentId, added, dropped, now)),
    accountsFor: async (fragmentId, datanodeId) =>
      (await fragmentSteps.hasReplica(sql, fragmentId, datanodeId)) || deletionSteps.isQueued(sql, fragmentId, datanodeId),
    async doomOrphan(fragmentId, datanodeId, now, deletedImageKey) {
      const key = { fragmentId, datanodeId };
      // The reconciler's, in a background pass: fenced.
      await fenced(sql, (q) =>
        deletedImageKey ? deletionSteps.queue(q, key, now, 'image-deleted', deletedImageKey) : deletionSteps.queue(q, key, now, 'orphan'),
      );
    },
  };
}
