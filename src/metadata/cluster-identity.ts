// The cluster id row of the index (at most one): read at start, written once when established.
import type { Db } from './database.ts';

export type ClusterIdSource = 'minted' | 'datanodes';

export function clusterIdentityRow(db: Db) {
  const select = db.prepare<[], { clusterId: string }>(`SELECT cluster_id AS clusterId FROM cluster_identity WHERE singleton = 1`);
  const insert = db.prepare(`INSERT INTO cluster_identity (singleton, cluster_id, established_at, source) VALUES (1, ?, ?, ?)`);
  return {
    load: (): string | undefined => select.get()?.clusterId,
    save(clusterId: string, at: number, source: ClusterIdSource) {
      insert.run(clusterId, at, source);
    },
  };
}

export type ClusterIdentityRow = ReturnType<typeof clusterIdentityRow>;
