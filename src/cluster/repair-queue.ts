// What re-replication copies next: the fragments lost datanodes left short of R copies, riskiest
// first (one live copy before two) across every lost datanode at once, read afresh for each
// batch so a datanode that returns drops out of the queue and one newly lost joins it at once.
import type { AtRiskFragment } from '../metadata/replication.ts';
import type { AsyncReplicationQueries as ReplicationQueries } from '../metadata/store.ts';
import type { Registry } from './registry.ts';

export function createRepairQueue({
  registry,
  queries,
  replicationFactor,
}: {
  registry: Registry;
  queries: ReplicationQueries;
  replicationFactor: number;
}) {
  return {
    /**
     * Up to `limit` fragments to copy now, given the datanodes whose replicas no longer count
     * (`lost`: DOWN past --repair-after, or draining), skipping those in `skip` (failed lately).
     */
    async next(lost: ReadonlySet<string>, skip: Iterable<string>, limit: number): Promise<AtRiskFragment[]> {
      if (lost.size === 0) return [];
      const nodes = registry.all();
      const live = nodes.filter((n) => registry.isLive(n.id));
      return await queries.atRisk({
        lost: [...lost],
        counted: nodes.filter((n) => !lost.has(n.id)).map((n) => n.id),
        live: live.filter((n) => !lost.has(n.id)).map((n) => n.id),
        // A draining datanode is lost but still serves its copies.
        readable: live.map((n) => n.id),
        factor: replicationFactor,
        skip,
        limit,
      });
    },
  };
}

export type RepairQueue = ReturnType<typeof createRepairQueue>;
