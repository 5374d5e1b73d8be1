// Periodic reconciliation of each live datanode's inventory with the index: files nobody
// accounts for (a crash mid-upload, a lost deletion) are deleted after a grace period; replicas
// the index expects but the datanode lacks are reported for repair; a verified copy of an
// under-replicated fragment that the index lost track of is adopted rather than deleted.
import type { Logger } from 'pino';
import type { Catalog } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { ReplicaDeleter } from './replica-deletions.ts';
import type { Registry } from './registry.ts';
import { sha256Hex, type BadReplica } from './replicas.ts';

export function createReconciler({ catalog, registry, client, deleter, log, intervalMs, graceMs, replicationFactor, onBad, now = Date.now }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  deleter: ReplicaDeleter;
  log: Logger;
  intervalMs: number;
  graceMs: number;
  replicationFactor: number;
  onBad: (bad: BadReplica) => void;
  now?: () => number;
}) {
  /** When each unaccounted file was first seen (key datanode:fragment). */
  const firstSeen = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let stopped = false;

  /**
   * A file of a fragment the index knows, on a datanode it does not list as a holder (say the
   * index lost the row while the datanode was away): kept as a replica when the fragment lacks
   * live copies and the bytes verify. True when adopted.
   */
  async function adopt(fragmentId: string, datanodeId: string, url: string): Promise<boolean> {
    const fragment = catalog.fragmentById(fragmentId);
    if (!fragment) return false;
    const live = catalog.replicasOf(fragmentId).filter((d) => registry.isLive(d)).length;
    if (live >= replicationFactor) return false;
    const data = await client.getFragment(url, fragmentId);
    if (!data || sha256Hex(data) !== fragment.sha256) return false;
    if (!catalog.moveReplicas(fragmentId, [datanodeId], [], now())) return false;
    log.info({ fragment: fragmentId, datanode: datanodeId }, 'adopted an unrecorded verified copy of an under-replicated fragment');
    return true;
  }

  async function reconcile(datanodeId: string): Promise<{ orphans: number; missing: number }> {
    const node = registry.get(datanodeId);
    if (!node || !registry.isLive(datanodeId)) return { orphans: 0, missing: 0 };
    const expected = catalog.replicaIdsOn(datanodeId);
    const listed = await client.listFragments(node.url);
    const present = new Set<string>();
    let orphans = 0;
    for (const { id } of listed) {
      present.add(id);
      const key = `${datanodeId}:${id}`;
      if (expected.has(id) || catalog.accountsFor(id, datanodeId)) {
        firstSeen.delete(key);
        continue;
      }
      if (await adopt(id, datanodeId, node.url)) {
        firstSeen.delete(key);
        continue;
      }
      const seen = firstSeen.get(key) ?? now();
      firstSeen.set(key, seen);
      if (now() - seen >= graceMs) {
        catalog.doomOrphan(id, datanodeId, now());
        firstSeen.delete(key);
        orphans += 1;
      }
    }
    // Listed before the index was read again: a replica recorded meanwhile is not "missing".
    const stillExpected = catalog.replicaIdsOn(datanodeId);
    let missing = 0;
    for (const id of expected) {
      if (!present.has(id) && stillExpected.has(id)) {
        onBad({ fragmentId: id, datanodeId, reason: 'missing' });
        missing += 1;
      }
    }
    if (orphans > 0) {
      log.info({ datanode: datanodeId, orphans }, 'deleting fragment files no image or upload references');
      void deleter.kick();
    }
    return { orphans, missing };
  }

  async function round() {
    for (const node of registry.all()) {
      if (stopped) return;
      try {
        await reconcile(node.id);
      } catch (err) {
        log.warn({ datanode: node.id, err: (err as Error).message }, 'reconciliation failed');
      }
    }
  }

  return {
    reconcile,
    round,
    start() {
      stopped = false;
      const tick = () => {
        current = round().finally(() => {
          current = undefined;
          if (!stopped) timer = setTimeout(tick, intervalMs);
        });
      };
      timer = setTimeout(tick, Math.min(intervalMs, 10_000));
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
    },
  };
}
