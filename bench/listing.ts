// The listing scenario's data: N stored image rows written straight into a fresh coordinator
// index (the coordinator's own migrations, so the schema is exactly its), before it starts.
import path from 'node:path';
import Database from 'better-sqlite3';
import { openDatabase } from '../src/metadata/database.ts';
import { INDEX_FILE } from '../src/coordinator.ts';

export const LISTING_PREFIX = 'listing/';
export const listingName = (i: number) => `${LISTING_PREFIX}${String(i).padStart(7, '0')}-${((i * 2654435761) >>> 0).toString(16)}.jpg`;

export const indexFile = (clusterDataDir: string) => path.join(clusterDataDir, 'coordinator', INDEX_FILE);

/** Inserts `rows` stored images in one transaction; returns the time it took in ms. */
export function fillIndex(clusterDataDir: string, rows: number): number {
  const t0 = performance.now();
  const db = openDatabase(indexFile(clusterDataDir));
  const insert =
    db.prepare(`INSERT INTO images (name, state, upload_id, size, content_type, sha256, fragment_size, fragment_count, created_at, expires_at)
    VALUES (?, 'stored', NULL, ?, 'image/jpeg', ?, 2097152, ?, ?, NULL)`);
  const sha = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const created = Date.now();
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      const size = 50_000 + ((i * 7919) % 5_000_000);
      insert.run(listingName(i), size, sha, Math.ceil(size / 2097152), created - i);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return performance.now() - t0;
}

/** The floor for one listing page: the same query on a read-only connection in this process. */
export function rawListing(clusterDataDir: string) {
  const db = new Database(indexFile(clusterDataDir), { readonly: true });
  const page = db.prepare(`SELECT id, name, state, upload_id AS uploadId, size, content_type AS contentType, sha256,
    fragment_size AS fragmentSize, fragment_count AS fragmentCount, created_at AS createdAt, expires_at AS expiresAt
    FROM images WHERE state = 'stored' AND name > ? ORDER BY name LIMIT ?`);
  return { page: (after: string, first: number) => page.all(after, first + 1), close: () => db.close() };
}
