// Drains the queue of replica files to delete: each is retried with backoff until its datanode
// acknowledges; a datanode that is DOWN keeps its share until it is live again.
import type { Logger } from 'pino';
import type { Catalog, ReplicaDeletion } from '../metadata/catalog.ts';
import { DatanodeHttpError, type DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import type { Scheduler } from '../shared/scheduler.ts';

const CONCURRENCY = 8;
const MAX_BACKOFF_MS = 60_000;

export function createReplicaDeleter({
  catalog,
  registry,
  client,
  log,
  scheduler,
  replicationFactor,
  pollMs = 1000,
  now = Date.now,
}: {
  catalog: Catalog;
  scheduler: Scheduler;
  replicationFactor: number;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  pollMs?: number;
  now?: () => number;
}) {
  /** The fragment is a stored image's, recorded with R replicas on other datanodes than this one. */
  function isSurplus(d: ReplicaDeletion): boolean {
    if (!catalog.fragmentById(d.fragmentId)) return false;
    return catalog.replicasOf(d.fragmentId).filter((id) => id !== d.datanodeId).length >= replicationFactor;
  }

  /** Deletes one replica file; resolves to `d` when it is gone (acknowledged by the caller, in a batch). */
  async function deleteOne(d: ReplicaDeletion): Promise<ReplicaDeletion | undefined> {
    const node = registry.get(d.datanodeId);
    if (!node) return d; // the datanode was removed from the cluster: nothing to ask
    if (!registry.isLive(d.datanodeId)) {
      catalog.postponeDeletion(d, now() + pollMs * 5); // checked again; cheap while it stays DOWN
      return undefined;
    }
    try {
      await client.deleteFragment(node.url, d.fragmentId, { reason: d.reason, deletedImage: d.imageKey ?? undefined });
      log.info(
        { datanode: d.datanodeId, fragment: d.fragmentId, reason: d.reason, image: d.imageKey ?? undefined },
        'replica file deleted',
      );
      return d;
    } catch (err) {
      if (err instanceof DatanodeHttpError && err.code === 'FRAGMENT_IN_USE') {
        // A write whose answer was lost (a partition, a timeout) reached this datanode with its
        // image's manifest: the datanode says the image is live, and the index agrees and holds
        // R other copies of the fragment. Two sources agree this copy is one too many.
        if (d.reason !== 'surplus-replica' && isSurplus(d)) return deleteOne({ ...d, reason: 'surplus-replica' });
        // The datanode's own records say the file belongs to a live image: it stays, and so
        // does the image; the index learns it back from the records (a rebuild or re-check).
        catalog.ackDeletion(d);
        log.warn(
          { datanode: d.datanodeId, fragment: d.fragmentId, reason: d.reason },
          'datanode refused to delete a fragment of a live image; kept',
        );
        return;
      }
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(d.attempts, 10));
      catalog.retryDeletionAt(d, now() + backoff);
      log.warn({ datanode: d.datanodeId, fragment: d.fragmentId, err: (err as Error).message }, 'replica deletion failed; will retry');
    }
  }

  async function drain() {
    for (;;) {
      const due = catalog.dueDeletions(now(), 256);
      if (due.length === 0 || loop.stopped) return;
      for (let i = 0; i < due.length; i += CONCURRENCY) {
        // One transaction (one WAL commit) acknowledges the whole batch, not one per file.
        catalog.ackDeletions((await Promise.all(due.slice(i, i + CONCURRENCY).map(deleteOne))).filter((d) => d !== undefined));
      }
    }
  }

  const loop = scheduler.loop('replica deletion', drain, { everyMs: pollMs });

  const kick = loop.kick;

  return {
    kick,
    /** A datanode is live again: the deletions it missed are due at once, not at their next check. */
    datanodeLive(datanodeId: string): Promise<void> {
      catalog.resumeDeletionsOn(datanodeId, now());
      return kick();
    },
    start: loop.start,
    /** Resolves once nothing is due (tests and shutdown). */
    idle: loop.idle,
    stop: loop.stop,
  };
}

export type ReplicaDeleter = ReturnType<typeof createReplicaDeleter>;
