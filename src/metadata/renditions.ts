// The rendition cache's table: which cached image renders which variant of which image, its
// bytes (for the budget) and when it was last served (for least-recently-used eviction).
import type { Db } from './database.ts';
import { createCatalog, type NewFragment } from './catalog.ts';

export interface RenditionRow {
  renditionImageId: number;
  sourceImageId: number;
  variant: string;
  size: number;
  width: number;
  height: number;
  lastUsedAt: number;
}

const COLUMNS = `rendition_image_id AS renditionImageId, source_image_id AS sourceImageId, variant, size, width, height, last_used_at AS lastUsedAt`;

export function renditionTable(db: Db) {
  const s = {
    find: db.prepare<[number, string], RenditionRow>(`SELECT ${COLUMNS} FROM renditions WHERE source_image_id = ? AND variant = ?`),
    insert: db.prepare(`INSERT INTO renditions (rendition_image_id, source_image_id, variant, size, width, height, last_used_at)
      VALUES (@renditionImageId, @sourceImageId, @variant, @size, @width, @height, @lastUsedAt)`),
    touch: db.prepare(`UPDATE renditions SET last_used_at = ? WHERE rendition_image_id = ?`),
    total: db.prepare<[], { bytes: number; count: number }>(`SELECT coalesce(sum(size), 0) AS bytes, count(*) AS count FROM renditions`),
    leastRecent: db.prepare<[number], RenditionRow>(`SELECT ${COLUMNS} FROM renditions ORDER BY last_used_at, rendition_image_id LIMIT ?`),
    sourceExists: db.prepare<[number], { one: number }>(`SELECT 1 AS one FROM images WHERE id = ? AND state = 'stored'`),
  };
  const catalog = createCatalog(db);
  const insert = (row: RenditionRow): boolean => {
    if (!s.sourceExists.get(row.sourceImageId)) return false;
    s.insert.run(row);
    return true;
  };
  return {
    find: (sourceImageId: number, variant: string) => s.find.get(sourceImageId, variant),
    /** False when the source image is gone meanwhile (its rendition must not outlive it). */
    insert,
    /**
     * In one transaction: the rendition upload's only fragment recorded on `datanodeIds`, the
     * upload completed (catalog.recordOnlyFragmentAndComplete) and `row` inserted. True when all
     * three happened; false when the upload is gone or changed, or the source image is gone.
     */
    completeRendition: db.transaction(
      (fragment: NewFragment, datanodeIds: string[], sha256: string, now: number, row: RenditionRow): boolean =>
        catalog.recordOnlyFragmentAndComplete(fragment, datanodeIds, sha256, now) === 'done' && insert(row),
    ),
    touch: (renditionImageId: number, now: number) => s.touch.run(now, renditionImageId),
    totals: () => s.total.get()!,
    leastRecent: (limit: number) => s.leastRecent.all(limit),
  };
}

export type RenditionTable = ReturnType<typeof renditionTable>;
