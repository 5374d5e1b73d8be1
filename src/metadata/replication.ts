// Index queries about how well fragments are replicated, for the repairer: which fragments lost
// datanodes leave short of R counted copies (riskiest first), and which hold more than R.
import type { Db } from './database.ts';
import type { FragmentRow } from './catalog.ts';

export interface AtRiskFragment extends FragmentRow {
  /** Replicas on datanodes that still count (not lost). */
  copies: number;
  /** Of those, the ones on live datanodes: the fragment's real margin. */
  liveCopies: number;
}

export function replicationQueries(db: Db) {
  // Sets of datanode or fragment ids are passed as JSON arrays (json_each): one statement whatever their size.
  const atRisk = db.prepare<[string, string, string, string, number, string, number], AtRiskFragment>(`
    WITH lost(id) AS (SELECT value FROM json_each(?)),
         counted(id) AS (SELECT value FROM json_each(?)),
         live(id) AS (SELECT value FROM json_each(?)),
         readable(id) AS (SELECT value FROM json_each(?))
    SELECT id, imageId, idx, size, sha256, copies, liveCopies FROM (
      SELECT f.id, f.image_id AS imageId, f.idx, f.size, f.sha256,
        (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id IN counted) AS copies,
        (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id IN live) AS liveCopies,
        (SELECT count(*) FROM replicas c WHERE c.fragment_id = f.id AND c.datanode_id IN readable) AS sources
      FROM fragments f
      WHERE f.id IN (SELECT r.fragment_id FROM replicas r WHERE r.datanode_id IN lost)
    )
    WHERE copies < ? AND sources > 0 AND id NOT IN (SELECT value FROM json_each(?))
    ORDER BY liveCopies, copies, id
    LIMIT ?`);
  const excess = db.prepare<[string, number], { id: string }>(`
    SELECT r.fragment_id AS id FROM replicas r WHERE r.datanode_id IN (SELECT value FROM json_each(?))
    GROUP BY r.fragment_id HAVING count(*) > ?`);

  return {
    /**
     * Fragments with a replica on a `lost` datanode and fewer than `factor` replicas on `counted`
     * datanodes, fewest `live` copies first (a fragment down to one copy before one with two),
     * whatever datanode they were lost with. Only those with a replica on a `readable` datanode
     * (one a copy can be read from); none of `skip`.
     */
    atRisk(opts: {
      lost: string[];
      counted: string[];
      live: string[];
      readable: string[];
      factor: number;
      skip: Iterable<string>;
      limit: number;
    }): AtRiskFragment[] {
      const json = (ids: Iterable<string>) => JSON.stringify([...ids]);
      return atRisk.all(
        json(opts.lost),
        json(opts.counted),
        json(opts.live),
        json(opts.readable),
        opts.factor,
        json(opts.skip),
        opts.limit,
      );
    },
    /** Fragments with more than `factor` replicas on the `live` datanodes. */
    excess(live: string[], factor: number): string[] {
      return excess.all(JSON.stringify(live), factor).map((r) => r.id);
    },
  };
}

export type ReplicationQueries = ReturnType<typeof replicationQueries>;
