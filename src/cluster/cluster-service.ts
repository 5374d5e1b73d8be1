// The cluster as the API sees it: the datanodes (listed, registered, drained, removed) and the
// figures about the whole cluster. Resolvers go through this, not to the registry or the index.
import type { Logger } from 'pino';
import { badInput, TesseraError } from '../errors.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { ClusterIdentity } from './cluster-identity.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { Monitor } from './monitor.ts';
import type { DatanodeView, Registry } from './registry.ts';
import type { Repairer } from './repair.ts';
import { normalizeHttpUrl } from '../shared/flag-values.ts';

export function createClusterService({
  catalog,
  registry,
  client,
  monitor,
  clusterIdentity,
  repairer,
  replicationFactor,
  log,
}: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  monitor: Monitor;
  clusterIdentity: ClusterIdentity;
  repairer: Repairer;
  replicationFactor: number;
  log: Logger;
}) {
  const requireDatanode = (id: string) => {
    const node = registry.get(id);
    if (!node) throw new TesseraError('DATANODE_NOT_FOUND', `No datanode has id "${id}".`);
    return node;
  };

  return {
    /** Every datanode known, whatever its status. */
    datanodes: () => registry.all(),
    /** The datanodes that are UP or DEGRADED. */
    liveDatanodes: () => registry.live(),
    datanode: (id: string) => registry.get(id),
    /**
     * Fragments of stored images with fewer verified replicas on live datanodes than the
     * replication factor. Counted in the index from the datanodes' rows, which the registry writes
     * after it changes a status: waiting for those writes, a datanode this coordinator has just
     * seen DOWN counts as DOWN here too (on PostgreSQL the write can still be on the wire).
     */
    async underReplicatedFragments() {
      await registry.persisted();
      return catalog.underReplicatedCount(replicationFactor);
    },
    /** Replica files still to delete from datanodes. */
    pendingReplicaDeletions: () => catalog.pendingDeletionCount(),

    /** Adds a datanode by URL (idempotent); its first status is sampled before this answers. */
    async register(url: string): Promise<DatanodeView> {
      const normalized = normalizeHttpUrl(url);
      if (normalized === undefined) throw badInput(`"${url}" is not an http(s) URL.`);
      // Its data dir's id, if it answers and proves it (the client drops an unproven id): the same
      // disks behind a new URL stay the same datanode, and no other server can take its entry.
      const nodeId = await client.health(normalized, 2000).then(
        (h) => h.nodeId,
        () => undefined,
      );
      const { datanode, created, movedFrom } = await registry.register(normalized, nodeId);
      if (movedFrom) log.info({ datanode: datanode.id, from: movedFrom, to: normalized }, 'datanode moved to a new URL');
      if (created) {
        log.info({ datanode: datanode.id, url: normalized }, 'datanode registered');
        await monitor.sampleNow(datanode.id); // its first status (and event) right away
        clusterIdentity.settle();
      }
      return registry.get(datanode.id)!;
    },

    /** Decommission, step 1: no new replicas; its fragments are copied elsewhere, then trimmed from it. */
    drain(id: string, drain: boolean): DatanodeView {
      requireDatanode(id);
      const node = registry.setDraining(id, drain)!;
      log.info({ datanode: id, draining: drain }, drain ? 'draining datanode' : 'datanode takes replicas again');
      void repairer.kick();
      return node;
    },

    /** Decommission, step 2: forget a datanode that holds no replica. */
    async remove(id: string): Promise<boolean> {
      const node = requireDatanode(id);
      if (!node.draining) throw new TesseraError('DATANODE_NOT_DRAINED', `Datanode ${id} is not draining; drainDatanode it first.`);
      const held = await catalog.replicaCountOn(id);
      if (held > 0)
        throw new TesseraError(
          'DATANODE_NOT_DRAINED',
          `Datanode ${id} still holds ${held} replica${held === 1 ? '' : 's'}; drain it and wait until it holds none.`,
        );
      await catalog.purgeDeletionsOn(id);
      registry.remove(id);
      log.info({ datanode: id }, 'datanode removed');
      return true;
    },
  };
}

export type ClusterService = ReturnType<typeof createClusterService>;
