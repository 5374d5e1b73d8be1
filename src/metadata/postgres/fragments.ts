// Fragments and their replicas on PostgreSQL, as catalog/fragment-rows.ts is for SQLite. Sets
// of ids are passed as text[] parameters (ANY / unnest): one statement whatever their size.
import type { FragmentQueries, ReplicaOfFragment } from '../catalog/fragment-rows.ts';
import type { FragmentRow, FragmentWithReplicas } from '../catalog.ts';
import type postgres from 'postgres';
import type { Q, Sql } from './connection.ts';
import type { Async } from '../async.ts';

const FRAGMENT_COLUMNS = 'f.id, f.image_id AS "imageId", f.idx, f.size, f.sha256';

/** Fragments with the datanodes holding each (in datanode id order), by index. */
const withReplicas = (sql: Q, where: postgres.Fragment) =>
  sql<FragmentWithReplicas[]>`SELECT ${sql.unsafe(FRAGMENT_COLUMNS)},
      coalesce(array_agg(r.datanode_id ORDER BY r.datanode_id) FILTER (WHERE r.datanode_id IS NOT NULL), '{}') AS replicas
    FROM fragments f LEFT JOIN replicas r ON r.fragment_id = f.id
    WHERE ${where} GROUP BY f.id ORDER BY f.idx`;

export function fragmentQueries(sql: Sql): Async<FragmentQueries> {
  const cols = sql.unsafe(FRAGMENT_COLUMNS);
  const list = async <T>(rows: Promise<T[]>) => [...(await rows)];
  return {
    fragments: (imageId) => list(sql<FragmentRow[]>`SELECT ${cols} FROM fragments f WHERE f.image_id = ${imageId} ORDER BY f.idx`),
    fragmentById: async (id) => (await sql<FragmentRow[]>`SELECT ${cols} FROM fragments f WHERE f.id = ${id}`)[0],
    receivedIndexes: async (imageId) =>
      (await sql<{ idx: number }[]>`SELECT idx FROM fragments WHERE image_id = ${imageId} ORDER BY idx`).map((r) => r.idx),
    fragmentsWithReplicas: (imageId) => list(withReplicas(sql, sql`f.image_id = ${imageId}`)),
    fragmentsInRange: (imageId, first, last) =>
      list(withReplicas(sql, sql`f.image_id = ${imageId} AND f.idx BETWEEN ${first} AND ${last}`)),
    replicasOf: async (fragmentId) =>
      (await sql<{ d: string }[]>`SELECT datanode_id AS d FROM replicas WHERE fragment_id = ${fragmentId} ORDER BY datanode_id`).map(
        (r) => r.d,
      ),
    fragmentsOn: (datanodeId, limit) =>
      list(sql<FragmentRow[]>`SELECT ${cols} FROM replicas r JOIN fragments f ON f.id = r.fragment_id
        WHERE r.datanode_id = ${datanodeId} LIMIT ${limit}`),
    replicaIdsOn: async (datanodeId) =>
      new Set((await sql<{ id: string }[]>`SELECT fragment_id AS id FROM replicas WHERE datanode_id = ${datanodeId}`).map((r) => r.id)),
    replicaCountOn: async (datanodeId) =>
      (await sql<{ n: number }[]>`SELECT count(*) AS n FROM replicas WHERE datanode_id = ${datanodeId}`)[0]!.n,
    replicaPage: (after, limit) =>
      list(sql<ReplicaOfFragment[]>`SELECT r.fragment_id AS "fragmentId", r.datanode_id AS "datanodeId", f.size, f.sha256
        FROM replicas r JOIN fragments f ON f.id = r.fragment_id
        WHERE (r.fragment_id, r.datanode_id) > (${after.fragmentId}, ${after.datanodeId})
        ORDER BY r.fragment_id, r.datanode_id LIMIT ${limit}`),
    underReplicatedCount: async (factor, excluded = []) =>
      (
        await sql<{ n: number }[]>`SELECT count(*) AS n FROM fragments f JOIN images i ON i.id = f.image_id
          WHERE i.state = 'stored' AND (SELECT count(*) FROM replicas r JOIN datanodes d ON d.id = r.datanode_id
            WHERE r.fragment_id = f.id AND d.status IN ('UP', 'DEGRADED') AND d.id <> ALL(${excluded}::text[])) < ${factor}`
      )[0]!.n,
  };
}

/** The steps the catalog's transactions combine (run on the transaction `tx`). */
export const fragmentSteps = {
  fragmentAt: async (tx: Q, imageId: number, idx: number) =>
    (await tx<FragmentRow[]>`SELECT ${tx.unsafe(FRAGMENT_COLUMNS)} FROM fragments f WHERE f.image_id = ${imageId} AND f.idx = ${idx}`)[0],
  /** Whether the fragment exists, locked against deletion until the transaction ends. */
  lockExisting: async (tx: Q, id: string) => (await tx`SELECT 1 FROM fragments WHERE id = ${id} FOR KEY SHARE`).length > 0,
  /** The fragment ids of an image, by index. */
  idsOf: async (tx: Q, imageId: number) =>
    (await tx<{ id: string }[]>`SELECT id FROM fragments WHERE image_id = ${imageId} ORDER BY idx`).map((r) => r.id),
  /** Inserts the fragment and records its replicas (as addReplicas), in one statement. */
  insertWithReplicas: (tx: Q, f: FragmentRow, datanodeIds: string[]) =>
    tx`WITH fragment AS (INSERT INTO fragments (id, image_id, idx, size, sha256)
          VALUES (${f.id}, ${f.imageId}, ${f.idx}, ${f.size}, ${f.sha256}) RETURNING id),
        settled AS (DELETE FROM replica_deletions WHERE fragment_id = ${f.id} AND datanode_id = ANY(${datanodeIds}::text[])),
        landed AS (DELETE FROM write_intents WHERE fragment_id = ${f.id} AND datanode_id = ANY(${datanodeIds}::text[]))
      INSERT INTO replicas (fragment_id, datanode_id) SELECT fragment.id, d FROM fragment, unnest(${datanodeIds}::text[]) AS d
      ON CONFLICT DO NOTHING`,
  deleteFragment: (tx: Q, id: string) => tx`DELETE FROM fragments WHERE id = ${id}`,
  /** The datanodes holding a file of any fragment of the stored image named `name`. */
  holdersOfStored: async (tx: Q, name: string) =>
    (
      await tx<{ d: string }[]>`SELECT DISTINCT r.datanode_id AS d FROM images i JOIN fragments f ON f.image_id = i.id
        JOIN replicas r ON r.fragment_id = f.id WHERE i.name = ${name} AND i.state = 'stored'`
    ).map((r) => r.d),
  deleteReplicas: (tx: Q, fragmentId: string, datanodeIds: string[]) =>
    tx`DELETE FROM replicas WHERE fragment_id = ${fragmentId} AND datanode_id = ANY(${datanodeIds}::text[])`,
  /**
   * Records the replicas: the files are no longer to delete nor in flight there (one statement:
   * the deletions and intents of those files go in the same snapshot as the replicas come).
   */
  addReplicas: (tx: Q, fragmentId: string, datanodeIds: string[]) =>
    tx`WITH settled AS (DELETE FROM replica_deletions WHERE fragment_id = ${fragmentId} AND datanode_id = ANY(${datanodeIds}::text[])),
        landed AS (DELETE FROM write_intents WHERE fragment_id = ${fragmentId} AND datanode_id = ANY(${datanodeIds}::text[]))
      INSERT INTO replicas (fragment_id, datanode_id) SELECT ${fragmentId}, unnest(${datanodeIds}::text[]) ON CONFLICT DO NOTHING`,
  hasReplica: async (tx: Q, fragmentId: string, datanodeId: string) =>
    (await tx`SELECT 1 FROM replicas WHERE fragment_id = ${fragmentId} AND datanode_id = ${datanodeId}`).length > 0,
};
