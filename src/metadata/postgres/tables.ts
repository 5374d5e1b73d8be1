// The smaller tables on PostgreSQL: datanodes, the cluster id, the repairer's replication
// queries and the rendition cache, as datanodes.ts, cluster-identity.ts, replication.ts and
// renditions.ts are for SQLite.
import type { DatanodeRow, DatanodeRows } from '../datanodes.ts';
import type { ClusterIdentityRow, ClusterIdSource } from '../cluster-identity.ts';
import type { AtRiskFragment, ReplicationQueries } from '../replication.ts';
import type { RenditionRow, RenditionTable } from '../renditions.ts';
import type { NewFragment } from '../catalog.ts';
import { type Q, type Sql, fencedWriter, isForeignKeyViolation, isUniqueViolation, transaction } from './connection.ts';
import type { Async } from '../async.ts';

/** What better-sqlite3's run() answers, for the methods whose SQLite form returns it. */
const ran = (result: { count: number }) => ({ changes: result.count, lastInsertRowid: 0 });

const DATANODE_COLUMNS = `id, url, node_id AS "nodeId", status, status_since AS "statusSince", registered_at AS "registeredAt",
  last_seen_at AS "lastSeenAt", cpu_percent AS "cpuPercent", memory_percent AS "memoryPercent", disk_percent AS "diskPercent",
  disk_free_bytes AS "diskFreeBytes", fragment_count AS "fragmentCount", stored_bytes AS "storedBytes", draining`;

export function datanodeTable(sql: Sql): Async<DatanodeRows> {
  const w = fencedWriter(sql);
  const cols = sql.unsafe(DATANODE_COLUMNS);
  return {
    all: async () => [...(await sql<DatanodeRow[]>`SELECT ${cols} FROM datanodes ORDER BY registered_at, id`)],
    byUrl: async (url) => (await sql<DatanodeRow[]>`SELECT ${cols} FROM datanodes WHERE url = ${url}`)[0],
    async insert(id, url, now) {
      await w`INSERT INTO datanodes (id, url, status, status_since, registered_at) VALUES (${id}, ${url}, NULL, ${now}, ${now})`;
    },
    async save(row) {
      await w`UPDATE datanodes SET status = ${row.status}, status_since = ${row.statusSince}, last_seen_at = ${row.lastSeenAt},
          cpu_percent = ${row.cpuPercent}, memory_percent = ${row.memoryPercent}, disk_percent = ${row.diskPercent},
          disk_free_bytes = ${row.diskFreeBytes}, fragment_count = ${row.fragmentCount}, stored_bytes = ${row.storedBytes}
        WHERE id = ${row.id}`;
    },
    setDraining: async (id, value) => ran(await w`UPDATE datanodes SET draining = ${value} WHERE id = ${id}`),
    remove: async (id) => ran(await w`DELETE FROM datanodes WHERE id = ${id}`),
    identify: async (id, nodeId) => ran(await w`UPDATE datanodes SET node_id = ${nodeId} WHERE id = ${id}`),
    move: async (id, url) => ran(await w`UPDATE datanodes SET url = ${url} WHERE id = ${id}`),
  };
}

export function clusterIdentityTable(sql: Sql): Async<ClusterIdentityRow> {
  const w = fencedWriter(sql);
  return {
    load: async () =>
      (await sql<{ clusterId: string }[]>`SELECT cluster_id AS "clusterId" FROM cluster_identity WHERE singleton = 1`)[0]?.clusterId,
    async save(clusterId: string, at: number, source: ClusterIdSource) {
      try {
        await w`INSERT INTO cluster_identity (singleton, cluster_id, established_at, source) VALUES (1, ${clusterId}, ${at}, ${source})`;
      } catch (err) {
        // Two coordinators establishing a new cluster at once: the first one's id stands.
        if (!isUniqueViolation(err)) throw err;
        throw new Error('Another coordinator established the cluster id meanwhile; start this one again to use it.', { cause: err });
      }
    },
  };
}

export function replicationTable(sql: Sql): Async<ReplicationQueries> {
  return {
    atRisk: async (o) => [
      ...(await sql<AtRiskFragment[]>`
        SELECT id, "imageId", idx, size, sha256, copies, "liveCopies" FROM (
          SELECT f.id, f.image_id AS "imageId", f.idx, f.size, f.sha256,
            (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id = ANY(${o.counted}::text[])) AS copies,
            (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id = ANY(${o.live}::text[])) AS "liveCopies",
            (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id = ANY(${o.readable}::text[])) AS sources
          FROM fragments f
          WHERE f.id IN (SELECT r.fragment_id FROM replicas r WHERE r.datanode_id = ANY(${o.lost}::text[]))
        ) x
        WHERE copies < ${o.factor} AND sources > 0 AND id <> ALL(${[...o.skip]}::text[])
        ORDER BY "liveCopies", copies, id COLLATE "C"
        LIMIT ${o.limit}`),
    ],
    excess: async (live, factor) =>
      (
        await sql<{ id: string }[]>`SELECT r.fragment_id AS id FROM replicas r WHERE r.datanode_id = ANY(${live}::text[])
          GROUP BY r.fragment_id HAVING count(*) > ${factor}`
      ).map((r) => r.id),
  };
}

const RENDITION_COLUMNS = `rendition_image_id AS "renditionImageId", source_image_id AS "sourceImageId", variant, size, width, height,
  last_used_at AS "lastUsedAt"`;

/** Inserts the rendition row unless its source is gone or no longer stored (it must not outlive it): false then. */
async function insertRendition(q: Q, row: RenditionRow): Promise<boolean> {
  try {
    const inserted = await q`INSERT INTO renditions (rendition_image_id, source_image_id, variant, size, width, height, last_used_at)
      SELECT ${row.renditionImageId}, ${row.sourceImageId}, ${row.variant}, ${row.size}, ${row.width}, ${row.height}, ${row.lastUsedAt}
      WHERE EXISTS (SELECT 1 FROM images WHERE id = ${row.sourceImageId} AND state = 'stored')`;
    return inserted.count > 0;
  } catch (err) {
    // The source deleted by another coordinator between the check and the insert.
    if (isForeignKeyViolation(err)) return false;
    throw err;
  }
}

/**
 * The rendition cache's table. `completeUpload` is the catalog's one-transaction fragment record
 * and completion, run on the transaction it is given (completeRendition adds the row in the same one).
 */
export function renditionRows(
  sql: Sql,
  completeUpload: (tx: Q, fragment: NewFragment, datanodeIds: string[], sha256: string, now: number) => Promise<false | string>,
): Async<RenditionTable> {
  const w = fencedWriter(sql);
  const cols = sql.unsafe(RENDITION_COLUMNS);
  return {
    find: async (sourceImageId, variant) =>
      (await sql<RenditionRow[]>`SELECT ${cols} FROM renditions WHERE source_image_id = ${sourceImageId} AND variant = ${variant}`)[0],
    insert: (row) => insertRendition(sql, row),
    completeRendition: (fragment, datanodeIds, sha256, now, row) =>
      transaction(sql, async (tx) => {
        if ((await completeUpload(tx, fragment, datanodeIds, sha256, now)) !== 'done') return false;
        // A rendition whose source went meanwhile undoes the whole transaction: no orphan rendition image.
        if (await insertRendition(tx, row)) return true;
        throw new RenditionSourceGone();
      }).catch((err: unknown) => {
        if (err instanceof RenditionSourceGone) return false;
        throw err;
      }),
    touch: async (renditionImageId, now) =>
      ran(await w`UPDATE renditions SET last_used_at = ${now} WHERE rendition_image_id = ${renditionImageId}`),
    totals: async () =>
      (await sql<{ bytes: number; count: number }[]>`SELECT coalesce(sum(size), 0) AS bytes, count(*) AS count FROM renditions`)[0]!,
    leastRecent: async (limit) => [
      ...(await sql<RenditionRow[]>`SELECT ${cols} FROM renditions ORDER BY last_used_at, rendition_image_id LIMIT ${limit}`),
    ],
  };
}

/** Rolls completeRendition's transaction back when the source image is gone. */
class RenditionSourceGone extends Error {}
