// Periodic reconciliation of each live datanode's inventory with the index: files nobody
// accounts for (a crash mid-upload, a lost deletion) are deleted after a grace period; replicas
// the index expects but the datanode lacks are reported for repair; a verified copy of an
// under-replicated fragment that the index lost track of is adopted rather than deleted.
// Whatever the index holds, a file that a live manifest on the datanodes references is never
// deleted; orphans are deleted only in rounds that read the records of every datanode, at most
// `maxDeletions` per round, each logged with its reason.
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { Scheduler } from '../shared/scheduler.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { ReplicaDeleter } from './replica-deletions.ts';
import type { Registry } from './registry.ts';
import { sha256Hex, type BadReplica } from './replicas.ts';
import type { ClusterRecords, ImageRecords } from './image-records.ts';

/** The first round comes at most this long after start, however long the interval. */
const FIRST_ROUND_WITHIN_MS = 10_000;

interface ReconcileDeps {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  deleter: ReplicaDeleter;
  log: Logger;
  graceMs: number;
  replicationFactor: number;
  /** Orphan files one round may queue for deletion; the rest wait for the next round. */
  maxDeletions: number;
  onBad: (bad: BadReplica) => void;
  now: () => number;
}

/** What reconciliation remembers between datanodes and rounds. */
interface ReconcileState {
  /** When each unaccounted file was first seen (key datanode:fragment). */
  firstSeen: Map<string, number>;
  /** Orphans queued this round (against maxDeletions). */
  doomedThisRound: number;
}

export interface ReconcileResult {
  orphans: number;
  missing: number;
  kept: number;
}

/**
 * A file of a fragment the index knows, on a datanode it does not list as a holder (say the
 * index lost the row while the datanode was away): kept as a replica when the fragment lacks
 * live copies and the bytes verify. True when adopted.
 */
async function adopt(
  { catalog, registry, client, log, replicationFactor, now }: ReconcileDeps,
  fragmentId: string,
  datanodeId: string,
  url: string,
): Promise<boolean> {
  const fragment = await catalog.fragmentById(fragmentId);
  if (!fragment) return false;
  const live = (await catalog.replicasOf(fragmentId)).filter((d) => registry.isLive(d)).length;
  if (live >= replicationFactor) return false;
  const data = await client.getFragment(url, fragmentId);
  if (!data || sha256Hex(data) !== fragment.sha256) return false;
  if (!(await catalog.moveReplicas(fragmentId, [datanodeId], [], now()))) return false;
  log.info({ fragment: fragmentId, datanode: datanodeId }, 'adopted an unrecorded verified copy of an under-replicated fragment');
  return true;
}

interface ListedFile {
  id: string;
  datanodeId: string;
  url: string;
  /** Replica ids the index listed on this datanode before its listing was read. */
  expected: Set<string>;
  cluster: ClusterRecords;
}

/** Why a listed file stays: the index holds it or adopts it back ('accounted'), or a live manifest on the datanodes references it ('kept'). */
async function whyKept(
  deps: ReconcileDeps,
  { id, datanodeId, url, expected, cluster }: ListedFile,
): Promise<'accounted' | 'kept' | undefined> {
  if (expected.has(id) || (await deps.catalog.accountsFor(id, datanodeId))) return 'accounted';
  if (await adopt(deps, id, datanodeId, url)) return 'accounted';
  // The datanodes' own records say it belongs to a stored image: kept, whatever the index says.
  if (cluster.liveFragments.has(id)) return 'kept';
  return undefined;
}

/**
 * One listed file: kept (see whyKept), 'doomed' (queued for deletion now), or 'waiting'
 * (unaccounted, but within its grace period, in a round that may not delete, or past the cap).
 */
async function judgeFile(
  deps: ReconcileDeps,
  state: ReconcileState,
  file: ListedFile,
): Promise<'accounted' | 'kept' | 'doomed' | 'waiting'> {
  const { catalog, log, graceMs, maxDeletions, now } = deps;
  const { id, datanodeId, cluster } = file;
  const key = `${datanodeId}:${id}`;
  const kept = await whyKept(deps, file);
  if (kept) {
    state.firstSeen.delete(key);
    return kept;
  }
  const seen = state.firstSeen.get(key) ?? now();
  state.firstSeen.set(key, seen);
  // A manifest may sit only on a datanode that did not answer: no orphan is deleted this round.
  const mayDelete = cluster.unread.length === 0;
  if (now() - seen < graceMs || !mayDelete || state.doomedThisRound >= maxDeletions) return 'waiting';
  const deletedImage = cluster.deadFragments.get(id);
  await catalog.doomOrphan(id, datanodeId, now(), deletedImage);
  log.info(
    { datanode: datanodeId, fragment: id, reason: deletedImage ? 'image-deleted' : 'orphan', image: deletedImage },
    'queued an unreferenced fragment file for deletion',
  );
  state.firstSeen.delete(key);
  state.doomedThisRound += 1;
  return 'doomed';
}

/** Replicas the index expected (and still expects) that the datanode did not list: reported for repair. */
async function reportMissing(
  { catalog, onBad }: ReconcileDeps,
  datanodeId: string,
  expected: Set<string>,
  present: Set<string>,
): Promise<number> {
  // Listed before the index was read again: a replica recorded meanwhile is not "missing".
  const stillExpected = await catalog.replicaIdsOn(datanodeId);
  let missing = 0;
  for (const id of expected) {
    if (!present.has(id) && stillExpected.has(id)) {
      onBad({ fragmentId: id, datanodeId, reason: 'missing' });
      missing += 1;
    }
  }
  return missing;
}

/** Compares one live datanode's listing with the index (and the datanodes' records). */
async function reconcileDatanode(
  deps: ReconcileDeps,
  state: ReconcileState,
  datanodeId: string,
  cluster: ClusterRecords,
): Promise<ReconcileResult> {
  const { catalog, registry, client, deleter, log, maxDeletions } = deps;
  const node = registry.get(datanodeId);
  if (!node || !registry.isLive(datanodeId)) return { orphans: 0, missing: 0, kept: 0 };
  const expected = await catalog.replicaIdsOn(datanodeId);
  const present = new Set<string>();
  let orphans = 0;
  let kept = 0;
  for (const { id } of await client.listFragments(node.url)) {
    present.add(id);
    const verdict = await judgeFile(deps, state, { id, datanodeId, url: node.url, expected, cluster });
    if (verdict === 'doomed') orphans += 1;
    else if (verdict === 'kept') kept += 1;
  }
  if (state.doomedThisRound >= maxDeletions)
    log.warn({ datanode: datanodeId, cap: maxDeletions }, 'orphan deletion cap reached for this round; the rest waits for the next one');
  else if (cluster.unread.length > 0)
    log.info(
      { datanode: datanodeId, unread: cluster.unread },
      'orphan deletion postponed: the records of some datanodes could not be read',
    );
  const missing = await reportMissing(deps, datanodeId, expected, present);
  if (orphans > 0) {
    log.info({ datanode: datanodeId, orphans }, 'deleting fragment files no image or upload references');
    void deleter.kick();
  }
  return { orphans, missing, kept };
}

/** Live manifests the index lacks, deleted images it still lists: the index is stale. */
async function checkAgreement(
  { catalog, log }: ReconcileDeps,
  cluster: ClusterRecords,
  onIndexDisagrees?: (what: { unknownImages: number; deletedImages: number }) => void,
): Promise<void> {
  let unknownImages = 0;
  let deletedImages = 0;
  for (const key of cluster.live.keys()) if (!(await catalog.imageByKey(key))) unknownImages += 1;
  for (const key of cluster.tombstoned.keys()) if ((await catalog.imageByKey(key))?.state === 'stored') deletedImages += 1;
  if (unknownImages + deletedImages === 0) return;
  log.warn({ unknownImages, deletedImages }, "the datanodes' records disagree with the index; re-checking it");
  onIndexDisagrees?.({ unknownImages, deletedImages });
}

export function createReconciler({
  records,
  scheduler,
  intervalMs,
  onIndexDisagrees,
  now = Date.now,
  ...rest
}: Omit<ReconcileDeps, 'now'> & {
  records: ImageRecords;
  scheduler: Scheduler;
  /** The datanodes' records know images the index does not, or deleted images it still lists. */
  onIndexDisagrees?: (what: { unknownImages: number; deletedImages: number }) => void;
  intervalMs: number;
  now?: () => number;
}) {
  const deps: ReconcileDeps = { ...rest, now };
  const { registry, log } = deps;
  const state: ReconcileState = { firstSeen: new Map(), doomedThisRound: 0 };

  async function round() {
    state.doomedThisRound = 0;
    let cluster: ClusterRecords;
    try {
      cluster = await records.readAll();
    } catch (err) {
      log.warn({ err: (err as Error).message }, "reconciliation: could not read the datanodes' records");
      return;
    }
    await checkAgreement(deps, cluster, onIndexDisagrees);
    for (const node of registry.all()) {
      if (loop.stopped) return;
      try {
        await reconcileDatanode(deps, state, node.id, cluster);
      } catch (err) {
        log.warn({ datanode: node.id, err: (err as Error).message }, 'reconciliation failed');
      }
    }
  }

  const loop = scheduler.loop('reconciliation', round, { everyMs: intervalMs, firstAfterMs: Math.min(intervalMs, FIRST_ROUND_WITHIN_MS) });

  return {
    /** One datanode now, outside the rounds (reads the records of every datanode first unless given). */
    async reconcile(datanodeId: string, cluster?: ClusterRecords): Promise<ReconcileResult> {
      return reconcileDatanode(deps, state, datanodeId, cluster ?? (await records.readAll()));
    },
    /** A round now (or right after the one under way). */
    kick: loop.kick,
    idle: loop.idle,
    start: loop.start,
    stop: loop.stop,
  };
}
