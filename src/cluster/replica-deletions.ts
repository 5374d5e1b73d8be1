// Drains the queue of replica files to delete: each is retried with backoff until its datanode
// acknowledges; a datanode that is DOWN keeps its share until it is live again.
import type { Logger } from 'pino';
import type { Catalog, ReplicaDeletion } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';

const CONCURRENCY = 8;
const MAX_BACKOFF_MS = 60_000;

export function createReplicaDeleter({ catalog, registry, client, log, pollMs = 1000, now = Date.now }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  pollMs?: number;
  now?: () => number;
}) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;

  async function deleteOne(d: ReplicaDeletion) {
    const node = registry.get(d.datanodeId);
    if (!node) {
      catalog.ackDeletion(d); // the datanode was removed from the cluster: nothing to ask
      return;
    }
    if (!registry.isLive(d.datanodeId)) {
      catalog.postponeDeletion(d, now() + pollMs * 5); // checked again; cheap while it stays DOWN
      return;
    }
    try {
      await client.deleteFragment(node.url, d.fragmentId);
      catalog.ackDeletion(d);
    } catch (err) {
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(d.attempts, 10));
      catalog.retryDeletionAt(d, now() + backoff);
      log.warn({ datanode: d.datanodeId, fragment: d.fragmentId, err: (err as Error).message }, 'replica deletion failed; will retry');
    }
  }

  async function drain() {
    for (;;) {
      const due = catalog.dueDeletions(now(), 256);
      if (due.length === 0 || stopped) return;
      for (let i = 0; i < due.length; i += CONCURRENCY) {
        await Promise.all(due.slice(i, i + CONCURRENCY).map(deleteOne));
      }
    }
  }

  /** Runs a pass now (or right after the one under way). */
  function kick(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = drain()
      .catch((err) => log.error({ err }, 'replica deletion pass failed'))
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          void kick();
        }
      });
    return running;
  }

  return {
    kick,
    /** A datanode is live again: the deletions it missed are due at once, not at their next check. */
    datanodeLive(datanodeId: string): Promise<void> {
      catalog.resumeDeletionsOn(datanodeId, now());
      return kick();
    },
    start() {
      stopped = false;
      const tick = () => {
        void kick().finally(() => {
          if (!stopped) timer = setTimeout(tick, pollMs);
        });
      };
      tick();
    },
    /** Resolves once nothing is due (tests and shutdown). */
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

export type ReplicaDeleter = ReturnType<typeof createReplicaDeleter>;
