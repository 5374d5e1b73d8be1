// The coordinator's cluster id: kept in the index, named on every request to a datanode, and
// regained from the datanodes' proven /health answers when the index was lost. Until it is
// established no datanode obeys a write or delete from this coordinator (datanode/server.ts).
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import type { AsyncClusterIdentityRow } from '../metadata/store.ts';

/** Seconds a client is told to wait before retrying a write refused for want of the cluster id. */
const NOT_READY_RETRY_SEC = 2;

/** `initial`: the id the index holds at start (row.load()). */
export function createClusterIdentity({
  row,
  initial,
  log,
  now = Date.now,
  mayMint = () => true,
}: {
  row: AsyncClusterIdentityRow;
  initial: string | undefined;
  log: Logger;
  now?: () => number;
  /** Several coordinators: only the leader mints (the others adopt its id, never one of their own). */
  mayMint?: () => boolean;
}) {
  let clusterId = initial;
  /** Proven datanodes that have joined no cluster yet, seen while ours was unknown. */
  let blankSeen = false;
  /** Cluster ids other proven datanodes named while we adopted one: logged once each. */
  const conflicting = new Set<string>();
  /** The read of the shared row in flight: concurrent callers share it. */
  let reading: Promise<string | undefined> | undefined;

  function establish(id: string, source: 'minted' | 'datanodes') {
    // Kept for the next start; datanodes are told it from now on, whether or not the write lands.
    row.save(id, now(), source).catch((err: Error) => log.error({ err: err.message, clusterId: id }, 'could not store the cluster id'));
    clusterId = id;
    log.info(
      { clusterId: id, source },
      source === 'minted' ? 'new cluster: minted its cluster id' : 'cluster id regained from the datanodes',
    );
  }

  /**
   * The id another coordinator of the same database established (several coordinators: only
   * the leader samples the datanodes, so only it learns or mints the id); already in the row.
   */
  function adopt(id: string): void {
    if (clusterId !== undefined) return;
    clusterId = id;
    log.info({ clusterId: id }, 'cluster id established by another coordinator');
  }

  /**
   * The id, read from the shared row when not known yet (adopted when there): one read at a
   * time, shared by concurrent callers, bounded by --metadata-timeout on PostgreSQL. Rejects when
   * the read fails.
   */
  function refresh(): Promise<string | undefined> {
    if (clusterId !== undefined) return Promise.resolve(clusterId);
    reading ??= row
      .load()
      .then((id) => {
        if (id !== undefined) adopt(id);
        return clusterId;
      })
      .finally(() => void (reading = undefined));
    return reading;
  }

  return {
    /** The cluster id, or undefined while it is not established (writes and deletes are then refused). */
    current: (): string | undefined => clusterId,
    refresh,

    /**
     * Before a write to the datanodes: the id, else (still unknown after reading the row)
     * CLUSTER_NOT_READY at once; every datanode would refuse the write (409 CLUSTER_ID_REQUIRED).
     */
    async require(): Promise<string> {
      const id = clusterId ?? (await refresh());
      if (id === undefined)
        throw new TesseraError(
          'CLUSTER_NOT_READY',
          'This coordinator does not know the cluster id yet (no datanode has answered it, and no other coordinator established one); retry shortly.',
          { retryAfterSec: NOT_READY_RETRY_SEC, http: { status: 503, headers: { 'retry-after': String(NOT_READY_RETRY_SEC) } } },
        );
      return id;
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
