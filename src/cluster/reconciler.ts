// Periodic reconciliation of each live datanode's inventory with the index: files nobody
// accounts for (a crash mid-upload, a lost deletion) are deleted after a grace period; replicas
// the index expects but the datanode lacks are reported for repair; a verified copy of an
// under-replicated fragment that the index lost track of is adopted rather than deleted.
// Whatever the index holds, a file that a live manifest on the datanodes references is never
// deleted; orphans are deleted only in rounds that read the records of every datanode, at most
// `maxDeletions` per round, each logged with its reason.
import type { Logger } from 'pino';
import type { Catalog } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { ReplicaDeleter } from './replica-deletions.ts';
import type { Registry } from './registry.ts';
import { sha256Hex, type BadReplica } from './replicas.ts';
import type { ClusterRecords, ImageRecords } from './image-records.ts';

export function createReconciler({ catalog, registry, client, records, deleter, log, intervalMs, graceMs, replicationFactor, maxDeletions, onBad, onIndexDisagrees, now = Date.now }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  records: ImageRecords;
  deleter: ReplicaDeleter;
  /** Orphan files one round may queue for deletion; the rest wait for the next round. */
  maxDeletions: number;
  /** The datanodes' records know images the index does not, or deleted images it still lists. */
  onIndexDisagrees?: (what: { unknownImages: number; deletedImages: number }) => void;
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

  /** Orphans queued this round (against maxDeletions). */
  let doomedThisRound = 0;

  async function reconcile(datanodeId: string, cluster?: ClusterRecords): Promise<{ orphans: number; missing: number; kept: number }> {
    cluster ??= await records.readAll();
    const node = registry.get(datanodeId);
    if (!node || !registry.isLive(datanodeId)) return { orphans: 0, missing: 0, kept: 0 };
    // A manifest may sit only on a datanode that did not answer: no orphan is deleted this round.
    const mayDelete = cluster.unread.length === 0;
    let kept = 0;
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
      // The datanodes' own records say it belongs to a stored image: kept, whatever the index says.
      if (cluster.liveFragments.has(id)) {
        firstSeen.delete(key);
        kept += 1;
        continue;
      }
      const seen = firstSeen.get(key) ?? now();
      firstSeen.set(key, seen);
      if (now() - seen >= graceMs && mayDelete && doomedThisRound < maxDeletions) {
        const deletedImage = cluster.deadFragments.get(id);
        catalog.doomOrphan(id, datanodeId, now(), deletedImage);
        log.info({ datanode: datanodeId, fragment: id, reason: deletedImage ? 'image-deleted' : 'orphan', image: deletedImage }, 'queued an unreferenced fragment file for deletion');
        firstSeen.delete(key);
        orphans += 1;
        doomedThisRound += 1;
      }
    }
    if (doomedThisRound >= maxDeletions) log.warn({ datanode: datanodeId, cap: maxDeletions }, 'orphan deletion cap reached for this round; the rest waits for the next one');
    else if (!mayDelete) log.info({ datanode: datanodeId, unread: cluster.unread }, 'orphan deletion postponed: the records of some datanodes could not be read');
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
    return { orphans, missing, kept };
  }

  async function round() {
    doomedThisRound = 0;
    let cluster: ClusterRecords;
    try {
      cluster = await records.readAll();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'reconciliation: could not read the datanodes\' records');
      return;
    }
    checkAgreement(cluster);
    for (const node of registry.all()) {
      if (stopped) return;
      try {
        await reconcile(node.id, cluster);
      } catch (err) {
        log.warn({ datanode: node.id, err: (err as Error).message }, 'reconciliation failed');
      }
    }
  }

  /** Live manifests the index lacks, deleted images it still lists: the index is stale. */
  function checkAgreement(cluster: ClusterRecords): void {
    let unknownImages = 0;
    let deletedImages = 0;
    for (const key of cluster.live.keys()) if (!catalog.imageByKey(key)) unknownImages += 1;
    for (const key of cluster.tombstoned.keys()) if (catalog.imageByKey(key)?.state === 'stored') deletedImages += 1;
    if (unknownImages + deletedImages === 0) return;
    log.warn({ unknownImages, deletedImages }, 'the datanodes\' records disagree with the index; re-checking it');
    onIndexDisagrees?.({ unknownImages, deletedImages });
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
