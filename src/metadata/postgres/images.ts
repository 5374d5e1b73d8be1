// The images table on PostgreSQL: images and open uploads (an upload is an image in state
// 'uploading' holding its name), as catalog/image-rows.ts is for SQLite. The UNIQUE name holds a
// name for every coordinator on the database: of two uploads of one name racing from two
// coordinators, the second INSERT waits for the first to commit and then fails on the index.
import type { ImageQueries, NewUpload, RebuiltImage } from '../catalog/image-rows.ts';
import { newImageKey } from '../catalog/image-rows.ts';
import type { ImageRow } from '../catalog.ts';
import { TesseraError } from '../../errors.ts';
import { prefixUpperBound } from '../../names.ts';
import { type Q, type Sql, fencedWriter, isUniqueViolation } from './connection.ts';
import type { Async } from '../async.ts';

export const IMAGE_COLUMNS = `id, image_key AS "imageKey", name, state, upload_id AS "uploadId", size, content_type AS "contentType", sha256,
  fragment_size AS "fragmentSize", fragment_count AS "fragmentCount", created_at AS "createdAt", expires_at AS "expiresAt",
  format, width, height, orientation, media_checked AS "mediaChecked"`;

/** The WHERE clause of a listing or count (stored images, under a prefix, after a cursor), as image-rows.ts builds it. */
function listing(sql: Q, prefix: string | undefined, after: string | undefined) {
  // Renditions are images under names starting with a control character: listings start at ' '.
  let lower = ' ';
  let strictlyAfter = false;
  if (prefix && prefix > lower) lower = prefix;
  if (after !== undefined && after >= lower) {
    lower = after;
    strictlyAfter = true;
  }
  const upper = prefix ? prefixUpperBound(prefix) : undefined;
  return sql`state = 'stored' AND ${strictlyAfter ? sql`name > ${lower}` : sql`name >= ${lower}`}
    ${upper !== undefined ? sql`AND name < ${upper}` : sql``}`;
}

const columns = (sql: Q) => sql.unsafe(IMAGE_COLUMNS);

/**
 * Inserts an open upload (reserving its name on every coordinator), owned by `ownerTokenId` when
 * given: IMAGE_ALREADY_EXISTS when an image or upload holds the name.
 */
export async function insertUploadOn(q: Q, row: NewUpload, ownerTokenId?: string): Promise<ImageRow> {
  try {
    const insert = q`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256,
        fragment_size, fragment_count, created_at, expires_at, format, width, height, orientation, media_checked)
      VALUES (${row.imageKey ?? newImageKey()}, ${row.name}, 'uploading', ${row.uploadId}, ${row.size}, ${row.contentType},
        ${row.sha256}, ${row.fragmentSize}, ${row.fragmentCount}, ${row.createdAt}, ${row.expiresAt}, ${row.format ?? null},
        ${row.width ?? null}, ${row.height ?? null}, ${row.orientation ?? null}, ${row.mediaChecked ?? 0})
      RETURNING ${columns(q)}`;
    // With its owner (the token whose quota it counts against) in the same statement.
    const [inserted] =
      ownerTokenId === undefined
        ? await q<ImageRow[]>`${insert}`
        : await q<ImageRow[]>`WITH upload AS (${insert}),
            owner AS (INSERT INTO upload_owners (image_id, token_id) SELECT id, ${ownerTokenId} FROM upload)
          SELECT * FROM upload`;
    return inserted!;
  } catch (err) {
    if (isUniqueViolation(err))
      throw new TesseraError('IMAGE_ALREADY_EXISTS', `"${row.name}" is already a stored image or an open upload.`);
    throw err;
  }
}

/** ImageQueries on the pool (each one statement, so each atomic on its own). */
export function imageQueries(sql: Sql): Async<ImageQueries> {
  const w = fencedWriter(sql);
  const one = async (rows: Promise<ImageRow[]>) => (await rows)[0];
  return {
    insertUpload: (row) => insertUploadOn(sql, row),
    uploadById: (uploadId) => one(sql`SELECT ${columns(sql)} FROM images WHERE upload_id = ${uploadId} AND state = 'uploading'`),
    imageByName: (name) => one(sql`SELECT ${columns(sql)} FROM images WHERE name = ${name} AND state = 'stored'`),
    imageById: (id) => one(sql`SELECT ${columns(sql)} FROM images WHERE id = ${id}`),
    imageByKey: (key) => one(sql`SELECT ${columns(sql)} FROM images WHERE image_key = ${key}`),
    storedImages: async () => [...(await sql<ImageRow[]>`SELECT ${columns(sql)} FROM images WHERE state = 'stored'`)],
    imageCount: async () => (await sql<{ n: number }[]>`SELECT count(*) AS n FROM images`)[0]!.n,
    imageHoldingName: (name) => one(sql`SELECT ${columns(sql)} FROM images WHERE name = ${name}`),
    listImages: async ({ first, after, prefix }) => [
      ...(await sql<ImageRow[]>`SELECT ${columns(sql)} FROM images WHERE ${listing(sql, prefix, after)} ORDER BY name LIMIT ${first}`),
    ],
    countImages: async (prefix) =>
      (await sql<{ n: number }[]>`SELECT count(*) AS n FROM images WHERE ${listing(sql, prefix, undefined)}`)[0]!.n,
    totals: async () =>
      (
        await sql<{ imageCount: number; storedBytes: number }[]>`SELECT count(*) AS "imageCount", coalesce(sum(size), 0) AS "storedBytes"
          FROM images WHERE state = 'stored' AND name >= ' '`
      )[0]!,
    expiredUploads: async (now) => [
      ...(await sql<ImageRow[]>`SELECT ${columns(sql)} FROM images WHERE state = 'uploading' AND expires_at <= ${now}`),
    ],
    async setMedia({ id, imageKey }, media, contentType) {
      await w`UPDATE images SET format = ${media.format}, width = ${media.width}, height = ${media.height},
        orientation = ${media.orientation}, media_checked = 1, content_type = coalesce(${contentType ?? null}::text, content_type)
        WHERE id = ${id} AND image_key = ${imageKey}`;
    },
  };
}

/** The steps the catalog's transactions combine (run on the transaction `tx`). */
export const imageSteps = {
  /** The image or upload row, locked until the transaction ends: changes to one image run one at a time. */
  lock: async (tx: Q, imageId: number) => (await tx<ImageRow[]>`SELECT ${columns(tx)} FROM images WHERE id = ${imageId} FOR UPDATE`)[0],
  /** The stored image of that name, locked as `lock` does. */
  lockStoredByName: async (tx: Q, name: string) =>
    (await tx<ImageRow[]>`SELECT ${columns(tx)} FROM images WHERE name = ${name} AND state = 'stored' FOR UPDATE`)[0],
  /** Inserts a rebuilt stored image: its new id. */
  insertStored: async (tx: Q, image: RebuiltImage, fragmentCount: number) =>
    (
      await tx<{ id: number }[]>`INSERT INTO images (image_key, name, state, upload_id, size, content_type, sha256, fragment_size,
          fragment_count, created_at, expires_at)
        VALUES (${image.imageKey}, ${image.name}, 'stored', NULL, ${image.size}, ${image.contentType}, ${image.sha256},
          ${image.fragmentSize}, ${fragmentCount}, ${image.createdAt}, NULL)
        RETURNING id`
    )[0]!.id,
  touchUpload: (tx: Q, imageId: number, expiresAt: number) =>
    tx`UPDATE images SET expires_at = ${expiresAt} WHERE id = ${imageId} AND state = 'uploading'`,
  complete: (tx: Q, imageId: number, sha256: string, now: number) =>
    tx`UPDATE images SET state = 'stored', upload_id = NULL, expires_at = NULL, sha256 = ${sha256}, created_at = ${now}
      WHERE id = ${imageId} AND state = 'uploading'`,
  /** Deletes the row (fragments, replicas, owner and rendition rows go with it, ON DELETE CASCADE); false when it was gone. */
  deleteRow: async (tx: Q, imageId: number) => (await tx`DELETE FROM images WHERE id = ${imageId}`).count > 0,
  renditionsOf: async (tx: Q, imageId: number) =>
    (await tx<{ id: number }[]>`SELECT rendition_image_id AS id FROM renditions WHERE source_image_id = ${imageId}`).map((r) => r.id),
};
