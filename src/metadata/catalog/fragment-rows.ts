// The index's fragments (an image's pieces, in order) and their replicas (which datanodes hold
// a verified copy of each).
import type { Db } from '../database.ts';
import type { FragmentRow, FragmentWithReplicas } from '../catalog.ts';

/** A replica with its fragment's size and hash: what the scrubber verifies. */
export interface ReplicaOfFragment {
  fragmentId: string;
  datanodeId: string;
  size: number;
  sha256: string;
}

/** Reading fragments and replicas; what another metadata engine answers the same way. */
export interface FragmentQueries {
  fragments(imageId: number): FragmentRow[];
  fragmentById(id: string): FragmentRow | undefined;
  /** The indexes of an open upload's fragments received so far. */
  receivedIndexes(imageId: number): number[];
  fragmentsWithReplicas(imageId: number): FragmentWithReplicas[];
  /**
   * Fragments `first`..`last` (inclusive, by index) of an image with their replicas: what a
   * Range request or fragmentData reads, without loading the image's other fragment rows.
   */
  fragmentsInRange(imageId: number, first: number, last: number): FragmentWithReplicas[];
  /** Datanode ids holding the fragment, in id order. */
  replicasOf(fragmentId: string): string[];
  /** Up to `limit` fragments with a replica on the datanode. */
  fragmentsOn(datanodeId: string, limit: number): FragmentRow[];
  replicaIdsOn(datanodeId: string): Set<string>;
  replicaCountOn(datanodeId: string): number;
  /** Replicas in (fragment, datanode) order after the given key: the scrubber's cursor. */
  replicaPage(after: { fragmentId: string; datanodeId: string }, limit: number): ReplicaOfFragment[];
  /** Fragments of stored images with fewer than `factor` replicas on live datanodes, not counting `excluded` ones (draining). */
  underReplicatedCount(factor: number, excluded?: string[]): number;
}

const FRAGMENT_COLUMNS = 'id, image_id AS imageId, idx, size, sha256';
type ReplicaPair = { fragmentId: string; datanodeId: string };

function withReplicas(fragments: FragmentRow[], replicas: ReplicaPair[]): FragmentWithReplicas[] {
  const byFragment = new Map<string, string[]>();
  for (const r of replicas) {
    const list = byFragment.get(r.fragmentId);
    if (list) list.push(r.datanodeId);
    else byFragment.set(r.fragmentId, [r.datanodeId]);
  }
  return fragments.map((f) => ({ ...f, replicas: byFragment.get(f.id) ?? [] }));
}

export function fragmentRows(db: Db) {
  const s = {
    fragments: db.prepare<[number], FragmentRow>(`SELECT ${FRAGMENT_COLUMNS} FROM fragments WHERE image_id = ? ORDER BY idx`),
    fragmentAt: db.prepare<[number, number], FragmentRow>(`SELECT ${FRAGMENT_COLUMNS} FROM fragments WHERE image_id = ? AND idx = ?`),
    fragmentById: db.prepare<[string], FragmentRow>(`SELECT ${FRAGMENT_COLUMNS} FROM fragments WHERE id = ?`),
    fragmentExists: db.prepare(`SELECT 1 FROM fragments WHERE id = ?`),
    fragmentIds: db.prepare<[number], string>(`SELECT id FROM fragments WHERE image_id = ? ORDER BY idx`).pluck(),
    fragmentsInRange: db.prepare<[number, number, number], FragmentRow>(
      `SELECT ${FRAGMENT_COLUMNS} FROM fragments WHERE image_id = ? AND idx BETWEEN ? AND ? ORDER BY idx`,
    ),
    receivedIndexes: db.prepare<[number], { idx: number }>(`SELECT idx FROM fragments WHERE image_id = ? ORDER BY idx`),
    insertFragment: db.prepare(`INSERT INTO fragments (id, image_id, idx, size, sha256) VALUES (@id, @imageId, @idx, @size, @sha256)`),
    deleteFragment: db.prepare(`DELETE FROM fragments WHERE id = ?`),
    replicasOfImage: db.prepare<[number], ReplicaPair>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId FROM replicas r JOIN fragments f ON f.id = r.fragment_id WHERE f.image_id = ?`,
    ),
    holdersOfImage: db.prepare<[number], { datanodeId: string }>(
      `SELECT DISTINCT r.datanode_id AS datanodeId FROM replicas r JOIN fragments f ON f.id = r.fragment_id WHERE f.image_id = ?`,
    ),
    replicasInRange: db.prepare<[number, number, number], ReplicaPair>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId FROM fragments f JOIN replicas r ON r.fragment_id = f.id
       WHERE f.image_id = ? AND f.idx BETWEEN ? AND ?`,
    ),
    replicasOfFragment: db.prepare<[string], { datanodeId: string }>(
      `SELECT datanode_id AS datanodeId FROM replicas WHERE fragment_id = ? ORDER BY datanode_id`,
    ),
    insertReplica: db.prepare(`INSERT OR IGNORE INTO replicas (fragment_id, datanode_id) VALUES (?, ?)`),
    deleteReplica: db.prepare(`DELETE FROM replicas WHERE fragment_id = ? AND datanode_id = ?`),
    hasReplica: db.prepare<[string, string], { one: number }>(`SELECT 1 AS one FROM replicas WHERE fragment_id = ? AND datanode_id = ?`),
    fragmentsOn: db.prepare<[string, number], FragmentRow>(`SELECT f.id, f.image_id AS imageId, f.idx, f.size, f.sha256 FROM replicas r
      JOIN fragments f ON f.id = r.fragment_id WHERE r.datanode_id = ? LIMIT ?`),
    replicaIdsOn: db.prepare<[string], { id: string }>(`SELECT fragment_id AS id FROM replicas WHERE datanode_id = ?`),
    replicaCountOn: db.prepare<[string], { n: number }>(`SELECT count(*) AS n FROM replicas WHERE datanode_id = ?`),
    replicaPage: db.prepare<[string, string, number], ReplicaOfFragment>(
      `SELECT r.fragment_id AS fragmentId, r.datanode_id AS datanodeId, f.size, f.sha256 FROM replicas r JOIN fragments f ON f.id = r.fragment_id
       WHERE (r.fragment_id, r.datanode_id) > (?, ?) ORDER BY r.fragment_id, r.datanode_id LIMIT ?`,
    ),
    underReplicated: db.prepare<[string, number], { n: number }>(`SELECT count(*) AS n FROM fragments f JOIN images i ON i.id = f.image_id
      WHERE i.state = 'stored' AND (SELECT count(*) FROM replicas r JOIN datanodes d ON d.id = r.datanode_id
        WHERE r.fragment_id = f.id AND d.status IN ('UP', 'DEGRADED') AND d.id NOT IN (SELECT value FROM json_each(?))) < ?`),
  };

  const queries: FragmentQueries = {
    fragments: (imageId) => s.fragments.all(imageId),
    fragmentById: (id) => s.fragmentById.get(id),
    receivedIndexes: (imageId) => s.receivedIndexes.all(imageId).map((r) => r.idx),
    fragmentsWithReplicas: (imageId) => withReplicas(s.fragments.all(imageId), s.replicasOfImage.all(imageId)),
    fragmentsInRange: (imageId, first, last) =>
      withReplicas(s.fragmentsInRange.all(imageId, first, last), s.replicasInRange.all(imageId, first, last)),
    replicasOf: (fragmentId) => s.replicasOfFragment.all(fragmentId).map((r) => r.datanodeId),
    fragmentsOn: (datanodeId, limit) => s.fragmentsOn.all(datanodeId, limit),
    replicaIdsOn: (datanodeId) => new Set(s.replicaIdsOn.all(datanodeId).map((x) => x.id)),
    replicaCountOn: (datanodeId) => s.replicaCountOn.get(datanodeId)!.n,
    replicaPage: (after, limit) => s.replicaPage.all(after.fragmentId, after.datanodeId, limit),
    underReplicatedCount: (factor, excluded = []) => s.underReplicated.get(JSON.stringify(excluded), factor)!.n,
  };

  /** The steps the catalog's transactions combine with images and deletions. */
  const steps = {
    fragmentAt: (imageId: number, idx: number) => s.fragmentAt.get(imageId, idx),
    fragmentExists: (id: string) => s.fragmentExists.get(id) !== undefined,
    /** The image's fragment ids in index order (what completion compares), without their rows. */
    fragmentIds: (imageId: number) => s.fragmentIds.all(imageId),
    insertFragment: (fragment: FragmentRow) => s.insertFragment.run(fragment),
    deleteFragment: (id: string) => s.deleteFragment.run(id),
    insertReplica: (fragmentId: string, datanodeId: string) => s.insertReplica.run(fragmentId, datanodeId),
    deleteReplica: (fragmentId: string, datanodeId: string) => s.deleteReplica.run(fragmentId, datanodeId),
    hasReplica: (fragmentId: string, datanodeId: string) => s.hasReplica.get(fragmentId, datanodeId) !== undefined,
    /** The datanodes holding a file of any of the image's fragments. */
    holdersOf: (imageId: number) => s.holdersOfImage.all(imageId).map((r) => r.datanodeId),
  };
  return { queries, steps };
}
