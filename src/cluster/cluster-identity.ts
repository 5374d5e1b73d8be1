// The coordinator's cluster id: kept in the index, named on every request to a datanode, and
// regained from the datanodes' proven /health answers when the index was lost. Until it is
// established no datanode obeys a write or delete from this coordinator (datanode/server.ts).
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ClusterIdentityRow } from '../metadata/cluster-identity.ts';

export function createClusterIdentity({
  row,
  log,
  now = Date.now,
  mayMint = () => true,
}: {
  row: ClusterIdentityRow;
  log: Logger;
  now?: () => number;
  /** Several coordinators: only the leader mints (the others adopt its id, never one of their own). */
  mayMint?: () => boolean;
}) {
  let clusterId = row.load();
  /** Proven datanodes that have joined no cluster yet, seen while ours was unknown. */
  let blankSeen = false;
  /** Cluster ids other proven datanodes named while we adopted one: logged once each. */
  const conflicting = new Set<string>();

  function establish(id: string, source: 'minted' | 'datanodes') {
    row.save(id, now(), source);
    clusterId = id;
    log.info(
      { clusterId: id, source },
      source === 'minted' ? 'new cluster: minted its cluster id' : 'cluster id regained from the datanodes',
    );
  }

  return {
    /** The cluster id, or undefined while it is not established (writes and deletes are then refused). */
    current: (): string | undefined => clusterId,

    /**
     * The id another coordinator of the same database established (several coordinators: only
     * the leader samples the datanodes, so only it learns or mints the id); already in the row.
     */
    adopt(id: string): void {
      if (clusterId !== undefined) return;
      clusterId = id;
      log.info({ clusterId: id }, 'cluster id established by another coordinator');
    },

    /**
     * A datanode proved (with the secret) that it belongs to `theirs` (null: to no cluster yet).
     * While ours is unknown, the first cluster id proven is ours: the index was lost, the datanodes were not.
     */
    learn(theirs: string | null, datanodeId: string): void {
      if (theirs === null) {
        blankSeen ||= clusterId === undefined;
        return;
      }
      if (clusterId === undefined) {
        establish(theirs, 'datanodes');
        return;
      }
      if (theirs !== clusterId && !conflicting.has(theirs)) {
        conflicting.add(theirs);
        log.error(
          { datanode: datanodeId, theirs, ours: clusterId },
          'a datanode belongs to another cluster: it is not used and obeys nothing from us',
        );
      }
    },

    /**
     * After the known datanodes answered: when none of them had joined a cluster (a new cluster, or
     * an index from before cluster ids), a new id is minted. Without any proven answer yet, nothing
     * is decided: a coordinator that lost its index must not invent a new identity for old disks.
     */
    settle(): string | undefined {
      if (clusterId === undefined && blankSeen && mayMint()) establish(randomUUID(), 'minted');
      return clusterId;
    },
  };
}

export type ClusterIdentity = ReturnType<typeof createClusterIdentity>;
