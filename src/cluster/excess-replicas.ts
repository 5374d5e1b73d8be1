// After a lost datanode returns, some fragments hold more than R replicas: its own copies and
// the ones repair made meanwhile. This keeps, of each such fragment, the R verified copies
// placement ranks first (usually the returned datanode's, where placement put it) and forgets
// the rest (their files queued for deletion). Nothing is copied, and a replica is dropped only
// when R others are verified present: on the datanode's own inventory, and for a datanode that
// was lost, only if it is still the same data dir (node id) that went away.
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { AsyncReplicationQueries as ReplicationQueries } from '../metadata/store.ts';
import type { DatanodeClient } from './datanode-client.ts';
import { placeReplicas } from './placement.ts';
import type { Registry } from './registry.ts';

/** Before a round that could not list a datanode is tried again. */
const RETRY_MS = 10_000;

export function createExcessTrimmer({
  catalog,
  queries,
  registry,
  client,
  log,
  replicationFactor,
  now = Date.now,
}: {
  catalog: Catalog;
  queries: ReplicationQueries;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  replicationFactor: number;
  now?: () => number;
}) {
  /** The node id (data dir) each lost datanode had when it was lost. */
  const identityWhenLost = new Map<string, string | null>();
  /** When a round is due: at start, after a datanode changed status or repair added copies. */
  let dueAt: number | undefined = 0;

  /** Its copies count only if it is the data dir that was lost (a wiped or swapped disk holds none of them). */
  const sameDataDir = (datanodeId: string) => {
    const before = identityWhenLost.get(datanodeId);
    return before === undefined || before === null || before === registry.get(datanodeId)?.nodeId;
  };

  async function round(signal: { readonly stopped: boolean }): Promise<boolean> {
    const counted = registry.eligible().map((n) => n.id);
    const fragmentIds = await queries.excess(counted, replicationFactor);
    const inventory = inventoryLister(registry, client, log);
    let complete = true;
    let dropped = 0;
    for (const fragmentId of fragmentIds) {
      if (signal.stopped) return false;
      const fragment = await catalog.fragmentById(fragmentId);
      if (!fragment) continue;
      const holders = (await catalog.replicasOf(fragmentId)).filter((d) => counted.includes(d));
      if (holders.length <= replicationFactor) continue;
      const verified: string[] = [];
      for (const d of holders) {
        const files = await inventory(d);
        if (!files) complete = false;
        else if (files.get(fragmentId) === fragment.size && sameDataDir(d)) verified.push(d);
      }
      if (verified.length < replicationFactor) continue; // not enough proof: repair and reconciliation decide
      const keep = placeReplicas(
        fragmentId,
        verified.map((d) => registry.get(d)!),
        replicationFactor,
      );
      // Statuses may have changed while listing: keep only what is still live, and R of it.
      if (keep.length < replicationFactor || !keep.every((d) => registry.isLive(d))) {
        complete = false;
        continue;
      }
      const drop = holders.filter((d) => !keep.includes(d));
      if (drop.length === 0 || !(await catalog.moveReplicas(fragmentId, [], drop, now()))) continue;
      dropped += drop.length;
      log.debug({ fragment: fragmentId, kept: keep, dropped: drop }, 'excess replicas dropped');
    }
    if (dropped > 0)
      log.info({ fragments: fragmentIds.length, dropped }, "trimmed excess replicas to the replication factor (placement's choice)");
    if (complete) for (const id of counted) identityWhenLost.delete(id);
    return complete;
  }

  return {
    /** Remembers which data dir each lost datanode had, to recognise it when it returns. */
    noteLost(datanodeIds: Iterable<string>) {
      for (const id of datanodeIds) if (!identityWhenLost.has(id)) identityWhenLost.set(id, registry.get(id)?.nodeId ?? null);
    },
    /** Excess replicas may exist now (a datanode is back, or repair added copies). */
    markDue() {
      dueAt = 0;
    },
    /** One round when due; a round left unfinished (a datanode did not answer) is due again later. */
    async trimIfDue(signal: { readonly stopped: boolean }): Promise<void> {
      if (dueAt === undefined || dueAt > now()) return;
      dueAt = undefined;
      let complete = false;
      try {
        complete = await round(signal);
      } finally {
        if (!complete && dueAt === undefined) dueAt = now() + RETRY_MS;
      }
    },
  };
}

export type ExcessTrimmer = ReturnType<typeof createExcessTrimmer>;

/** Each datanode's inventory (fragment id → size), listed once per round; undefined when it did not answer. */
function inventoryLister(registry: Registry, client: DatanodeClient, log: Logger) {
  const inventories = new Map<string, Promise<Map<string, number> | undefined>>();
  return (datanodeId: string) => {
    let listed = inventories.get(datanodeId);
    if (!listed) {
      const node = registry.get(datanodeId);
      listed = node
        ? client.listFragments(node.url).then(
            (files) => new Map(files.map((f) => [f.id, f.size])),
            (err) => {
              log.warn(
                { datanode: datanodeId, err: (err as Error).message },
                'could not list a datanode to trim excess replicas; will retry',
              );
              return undefined;
            },
          )
        : Promise.resolve(undefined);
      inventories.set(datanodeId, listed);
    }
    return listed;
  };
}
