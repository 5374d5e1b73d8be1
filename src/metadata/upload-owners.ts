// Which token opened which upload (upload_owners), so per-token quotas on open uploads and the
// bytes they reserve survive a restart. The quota check and the insert are one transaction.
import type { Db } from './database.ts';
import { createCatalog, type ImageRow } from './catalog.ts';
import type { NewUpload } from './catalog/image-rows.ts';
import { asyncOf } from './async.ts';

export interface UploadLimits {
  maxOpenUploads: number;
  maxReservedBytes: number;
}

/** A token's open (unexpired) uploads. */
export interface OpenUploads {
  count: number;
  bytes: number;
}

/** The upload_owners table; what every metadata engine answers the same way. */
export interface UploadOwners {
  /**
   * In one transaction: when the token's uploads open at `now` leave room under `limits` for one
   * more of `row.size` bytes, inserts the upload (as catalog.insertUpload: IMAGE_ALREADY_EXISTS
   * when its name is held) owned by the token; otherwise changes nothing and answers what the
   * token holds open.
   */
  insertOwnedUpload(
    row: NewUpload,
    tokenId: string,
    limits: UploadLimits,
    now: number,
  ): Promise<{ row: ImageRow; refused?: undefined } | { row?: undefined; refused: OpenUploads }>;
  /** Forgets owners of uploads that completed or went away (the expiry sweep); answers how many. */
  sweepOwners(): Promise<number>;
}

export function uploadOwners(db: Db): UploadOwners {
  const openUploadsOf = db.prepare<[number, string], { n: number; bytes: number | null }>(
    // From the open uploads (a partial index), not from the token's owner rows: those of completed
    // uploads stay until the expiry sweep, so a busy token's rows grow by one per image stored
    // and the count cost with them (CROSS JOIN keeps SQLite to this order).
    `SELECT count(*) AS n, sum(i.size) AS bytes FROM images i CROSS JOIN upload_owners o ON o.image_id = i.id
     WHERE i.state = 'uploading' AND i.expires_at > ? AND o.token_id = ?`,
  );
  const recordOwner = db.prepare('INSERT OR REPLACE INTO upload_owners (image_id, token_id) VALUES (?, ?)');
  const dropStale = db.prepare("DELETE FROM upload_owners WHERE image_id NOT IN (SELECT id FROM images WHERE state = 'uploading')");
  const catalog = createCatalog(db);
  return asyncOf<UploadOwners>({
    insertOwnedUpload: db.transaction((row: NewUpload, tokenId: string, limits: UploadLimits, now: number) => {
      const open = openUploadsOf.get(now, tokenId)!;
      const held = { count: open.n, bytes: open.bytes ?? 0 };
      if (held.count + 1 > limits.maxOpenUploads || held.bytes + row.size > limits.maxReservedBytes) return { refused: held };
      const inserted = catalog.insertUpload(row);
      recordOwner.run(inserted.id, tokenId);
      return { row: inserted };
    }),
    sweepOwners: () => dropStale.run().changes,
  });
}
