// The index's images and open uploads (one `images` row each; an upload is an image in state
// 'uploading' that holds its name until it completes, is aborted or expires).
import { randomBase64url } from '../../shared/random-ids.ts';
import type Database from 'better-sqlite3';
import type { Db } from '../database.ts';
import type { ImageMediaColumns, ImageRow } from '../catalog.ts';
import { TesseraError } from '../../errors.ts';
import { prefixUpperBound } from '../../names.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

/** 128 random bits: an image key never repeats, so a tombstone can only ever kill its own image. */
export const newImageKey = () => randomBase64url(16);

/** An open upload's row before the index gives it an id. */
export type NewUpload = Omit<ImageRow, 'id' | 'state' | 'imageKey' | keyof ImageMediaColumns | 'mediaChecked'> &
  Partial<ImageMediaColumns> & { uploadId: string; imageKey?: string; mediaChecked?: number };
/** A stored image rebuilt from a datanode manifest, before the index gives it an id. */
export type RebuiltImage = Omit<
  ImageRow,
  'id' | 'state' | 'uploadId' | 'expiresAt' | 'fragmentCount' | 'sha256' | keyof ImageMediaColumns | 'mediaChecked'
> & { sha256: string };

/** Reading and reserving images; what another metadata engine answers the same way. */
export interface ImageQueries {
  /** Reserves the name for a new upload; IMAGE_ALREADY_EXISTS when an image or upload holds it. */
  insertUpload(row: NewUpload): ImageRow;
  uploadById(uploadId: string): ImageRow | undefined;
  imageByName(name: string): ImageRow | undefined;
  imageById(id: number): ImageRow | undefined;
  imageByKey(key: string): ImageRow | undefined;
  storedImages(): ImageRow[];
  /** Images and open uploads. */
  imageCount(): number;
  /** The stored image or open upload holding the name. */
  imageHoldingName(name: string): ImageRow | undefined;
  /** Stored images in UTF-8 byte order of their names, after the cursor `after`, under `prefix`. */
  listImages(query: { first: number; after?: string; prefix?: string }): ImageRow[];
  countImages(prefix?: string): number;
  totals(): { imageCount: number; storedBytes: number };
  expiredUploads(now: number): ImageRow[];
  /**
   * Records what detection found in `image` (its id and key: an id alone may be another's since,
   * see NewFragment); `contentType` (when given) replaces the stored one.
   */
  setMedia(image: Pick<ImageRow, 'id' | 'imageKey'>, media: ImageMediaColumns, contentType?: string): void;
}

const IMAGE_COLUMNS = `id, image_key AS imageKey, name, state, upload_id AS uploadId, size, content_type AS contentType, sha256,
  fragment_size AS fragmentSize, fragment_count AS fragmentCount, created_at AS createdAt, expires_at AS expiresAt,
  format, width, height, orientation, media_checked AS mediaChecked`;

/** The WHERE clause of a listing or count: stored images, under a prefix, after a cursor. */
function listing(prefix: string | undefined, after: string | undefined) {
  // Cached renditions are images under names that start with a control character, which no
  // user-given name does: listings start at ' ' so they never show them. One lower bound only,
  // the highest of ' ', the prefix and the cursor: given two, SQLite may walk the index from the
  // lower one (a page deep in a large index then reads every name before the cursor).
  let lower = ' ';
  let strictlyAfter = false;
  if (prefix && prefix > lower) lower = prefix;
  if (after !== undefined && after >= lower) {
    lower = after;
    strictlyAfter = true;
  }
  const where = [`state = 'stored'`, strictlyAfter ? 'name > ?' : 'name >= ?'];
  const params: string[] = [lower];
  const upper = prefix ? prefixUpperBound(prefix) : undefined;
  if (upper !== undefined) {
    where.push('name < ?');
    params.push(upper);
  }
  return { where: where.join(' AND '), params };
}

/** The prepared statements on the images table. */
function imageStatements(db: Db) {
  return {
    insertUpload:
      db.prepare(`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256, fragment_size, fragment_count, created_at, expires_at,
        format, width, height, orientation, media_checked)
      VALUES (@imageKey, @name, 'uploading', @uploadId, @size, @contentType, @sha256, @fragmentSize, @fragmentCount, @createdAt, @expiresAt,
        @format, @width, @height, @orientation, @mediaChecked)`),
    setMedia:
      db.prepare(`UPDATE images SET format = @format, width = @width, height = @height, orientation = @orientation, media_checked = 1,
      content_type = coalesce(@contentType, content_type) WHERE id = @id AND image_key = @imageKey`),
    renditionsOf: db.prepare<[number], { id: number }>(`SELECT rendition_image_id AS id FROM renditions WHERE source_image_id = ?`),
    insertStored:
      db.prepare(`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256, fragment_size, fragment_count, created_at, expires_at)
      VALUES (@imageKey, @name, 'stored', NULL, @size, @contentType, @sha256, @fragmentSize, @fragmentCount, @createdAt, NULL)`),
    imageByKey: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE image_key = ?`),
    storedImages: db.prepare<[], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE state = 'stored'`),
    imageCount: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM images`),
    imageHoldingName: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE name = ?`),
    uploadById: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE upload_id = ? AND state = 'uploading'`),
    imageByName: db.prepare<[string], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE name = ? AND state = 'stored'`),
    imageById: db.prepare<[number], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id = ?`),
    storedKeyByName: db.prepare<[string], Pick<ImageRow, 'id' | 'imageKey'>>(
      `SELECT id, image_key AS imageKey FROM images WHERE name = ? AND state = 'stored'`,
    ),
    touchUpload: db.prepare(`UPDATE images SET expires_at = ? WHERE id = ? AND state = 'uploading'`),
    uploadState: db.prepare<[number], Pick<ImageRow, 'imageKey' | 'state' | 'expiresAt'>>(
      `SELECT image_key AS imageKey, state, expires_at AS expiresAt FROM images WHERE id = ?`,
    ),
    complete: db.prepare(
      `UPDATE images SET state = 'stored', upload_id = NULL, expires_at = NULL, sha256 = ?, created_at = ? WHERE id = ? AND state = 'uploading'`,
    ),
    deleteImage: db.prepare(`DELETE FROM images WHERE id = ?`),
    expiredUploads: db.prepare<[number], ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM images WHERE state = 'uploading' AND expires_at <= ?`),
    totals: db.prepare<[], { imageCount: number; storedBytes: number }>(
      `SELECT count(*) AS imageCount, coalesce(sum(size), 0) AS storedBytes FROM images WHERE state = 'stored' AND name >= ' '`,
    ),
  };
}

export function imageRows(db: Db) {
  const s = imageStatements(db);
  // Four shapes of the listing query (with or without prefix bound / cursor): prepared lazily, once.
  const listCache = new Map<string, Database.Statement<unknown[]>>();
  const cached = (sql: string) => {
    let stmt = listCache.get(sql);
    if (!stmt) listCache.set(sql, (stmt = db.prepare<unknown[]>(sql)));
    return stmt;
  };

  const queries: ImageQueries = {
    insertUpload(row) {
      try {
        const media = {
          format: row.format ?? null,
          width: row.width ?? null,
          height: row.height ?? null,
          orientation: row.orientation ?? null,
          mediaChecked: row.mediaChecked ?? 0,
        };
        const imageKey = row.imageKey ?? newImageKey();
        const { lastInsertRowid } = s.insertUpload.run({ ...row, ...media, imageKey });
        // The row as inserted, not read back: one statement less per upload.
        const { name, uploadId, size, contentType, sha256, fragmentSize, fragmentCount, createdAt, expiresAt } = row;
        const state = 'uploading' as const;
        return {
          id: Number(lastInsertRowid),
          imageKey,
          name,
          state,
          uploadId,
          size,
          contentType,
          sha256,
          fragmentSize,
          fragmentCount,
          createdAt,
          expiresAt,
          ...media,
        };
      } catch (err) {
        if (isUniqueViolation(err))
          throw new TesseraError('IMAGE_ALREADY_EXISTS', `"${row.name}" is already a stored image or an open upload.`);
        throw err;
      }
    },
    uploadById: (uploadId) => s.uploadById.get(uploadId),
    imageByName: (name) => s.imageByName.get(name),
    imageById: (id) => s.imageById.get(id),
    imageByKey: (key) => s.imageByKey.get(key),
    storedImages: () => s.storedImages.all(),
    imageCount: () => s.imageCount.get()!.n,
    imageHoldingName: (name) => s.imageHoldingName.get(name),
    listImages({ first, after, prefix }) {
      const { where, params } = listing(prefix, after);
      return cached(`SELECT ${IMAGE_COLUMNS} FROM images WHERE ${where} ORDER BY name LIMIT ?`).all(...params, first) as ImageRow[];
    },
    countImages(prefix) {
      const { where, params } = listing(prefix, undefined);
      return (cached(`SELECT count(*) AS n FROM images WHERE ${where}`).get(...params) as { n: number }).n;
    },
    totals: () => s.totals.get()!,
    expiredUploads: (now) => s.expiredUploads.all(now),
    setMedia: ({ id, imageKey }, media, contentType) => void s.setMedia.run({ ...media, contentType: contentType ?? null, id, imageKey }),
  };

  /** The steps the catalog's transactions combine with fragments and deletions. */
  const steps = {
    /** What recording a fragment checks of its upload, without reading (and converting) the whole row. */
    uploadState: (imageId: number) => s.uploadState.get(imageId),
    /** Inserts a rebuilt stored image: its new id. */
    insertStored: (image: RebuiltImage, fragmentCount: number) => Number(s.insertStored.run({ ...image, fragmentCount }).lastInsertRowid),
    touchUpload: (imageId: number, expiresAt: number) => s.touchUpload.run(expiresAt, imageId),
    complete: (imageId: number, sha256: string, now: number) => s.complete.run(sha256, now, imageId),
    /**
     * The id and key of the stored image `name`: what a delete needs (a row of every column was a
     * twentieth of a sequential delete's coordinator CPU).
     */
    storedKeyByName: (name: string) => s.storedKeyByName.get(name),
    /** Deletes the image's row (its fragments and replicas go with it, ON DELETE CASCADE); false when it was gone. */
    deleteRow: (imageId: number) => s.deleteImage.run(imageId).changes > 0,
    /** The cached renditions of an image (images of their own, renditions/cache.ts). */
    renditionsOf: (imageId: number) => s.renditionsOf.all(imageId).map((r) => r.id),
  };
  return { queries, steps };
}
