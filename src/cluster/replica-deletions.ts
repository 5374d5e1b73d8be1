// Drains the queue of replica files to delete: each is retried with backoff until its datanode
// acknowledges; a datanode that is DOWN keeps its share until it is live again.
import type { Logger } from 'pino';
import type { ReplicaDeletion } from '../metadata/catalog.ts';
import type { ReplicaKey } from '../metadata/catalog/deletion-queue.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { DeletionOutcome } from '../shared/datanode-api.ts';
import type { Registry } from './registry.ts';
import type { ClusterIdentity } from './cluster-identity.ts';
import type { Scheduler } from '../shared/scheduler.ts';
import { BURST_ROUNDS, roundSpacer } from '../shared/round-spacing.ts';

/** Queued deletions one round takes: each datanode gets its share in one request (POST /deletions). */
const BATCH = 256;
const MAX_BACKOFF_MS = 60_000;
/** Logged when a datanode back live cannot have its waiting deletions made due (tests match it). */
export const RESUME_FAILED = 'could not make the deletions that waited for a datanode due now; they run at their next check';

interface DeleteDeps {
  catalog: Catalog;
  client: DatanodeClient;
  log: Logger;
  replicationFactor: number;
  now: () => number;
}

/**
 * The fragment is a stored image's, recorded with R replicas on other datanodes than this one, and
 * not on this one: a copy the index records is not surplus however many others there are (its
 * recording may have committed after the round's settleRecordedWrites looked), and deleting it
 * would leave the index a replica with no file.
 */
async function isSurplus({ catalog, replicationFactor }: DeleteDeps, d: ReplicaDeletion): Promise<boolean> {
  if (!(await catalog.fragmentById(d.fragmentId))) return false;
  const holders = await catalog.replicasOf(d.fragmentId);
  return !holders.includes(d.datanodeId) && holders.length >= replicationFactor;
}

/**
 * The deletions of unrecorded writes in `due` whose file the index records as a replica: the
 * index itself says those are not garbage (a deletion queued before releases checked for a
 * replica, or one a recording raced), so they are settled without deleting, by the index in the
 * statement that checks the replica (catalog.settleRecordedWrites), so a recording or replacement
 * in between is seen. One query per round, and only for a round with such deletions: an image's
 * deletions never ask.
 */
async function settleRecordedWrites({ catalog, log }: DeleteDeps, due: ReplicaDeletion[]): Promise<Set<ReplicaDeletion>> {
  const writes = due.filter((d) => d.reason === 'unrecorded-write');
  if (writes.length === 0) return new Set();
  const key = (k: ReplicaKey) => `${k.fragmentId}:${k.datanodeId}`;
  const settled = new Set((await catalog.settleRecordedWrites(writes)).map(key));
  const kept = writes.filter((d) => settled.has(key(d)));
  if (kept.length > 0)
    log.warn(
      { files: kept.map((d) => ({ fragment: d.fragmentId, datanode: d.datanodeId })) },
      'deletion of an unrecorded write names a replica the index records; kept',
    );
  return new Set(kept);
}

/**
 * Deletes these replica files on one live datanode, in one request; resolves to those that are
 * gone or settled (acknowledged by the caller, in one transaction), as they were queued: the
 * acknowledgement removes only a row still queued with the reason it was read with.
 * `sentAs`: the reason the datanode is given instead of the queued one (a surplus copy sent
 * again). A failed request leaves them queued, due again after a backoff that grows with their
 * attempts.
 */
async function deleteOn(
  deps: DeleteDeps,
  datanodeId: string,
  url: string,
  ds: ReplicaDeletion[],
  sentAs?: 'surplus-replica',
): Promise<ReplicaDeletion[]> {
  const { catalog, client, log, now } = deps;
  const reasonOf = (d: ReplicaDeletion) => sentAs ?? d.reason;
  let outcomes: DeletionOutcome[];
  try {
    outcomes = await client.deleteBatch(url, {
      tombstones: [],
      fragments: ds.map((d) => ({ id: d.fragmentId, reason: reasonOf(d), deletedImage: d.imageKey ?? undefined })),
    });
  } catch (err) {
    for (const d of ds) await catalog.retryDeletionAt(d, now() + Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(d.attempts, 10)));
    log.warn({ datanode: datanodeId, files: ds.length, err: (err as Error).message }, 'replica deletions failed; will retry');
    return [];
  }
  const deleted: ReplicaDeletion[] = [];
  const kept: ReplicaDeletion[] = [];
  const surplus: ReplicaDeletion[] = [];
  const surplusNow = await Promise.all(
    ds.map((d, i) => outcomes[i] !== 'deleted' && reasonOf(d) !== 'surplus-replica' && isSurplus(deps, d)),
  );
  ds.forEach((d, i) => {
    if (outcomes[i] === 'deleted') return void deleted.push(d);
    // A write whose answer was lost (a partition, a timeout) reached this datanode with its
    // image's manifest: the datanode says the image is live, and the index agrees and holds
    // R other copies of the fragment. Two sources agree this copy is one too many.
    if (surplusNow[i]) return void surplus.push(d);
    // The datanode's own records say the file belongs to a live image: it stays, and so
    // does the image; the index learns it back from the records (a rebuild or re-check).
    kept.push(d);
    log.warn(
      { datanode: datanodeId, fragment: d.fragmentId, reason: reasonOf(d) },
      'datanode refused to delete a fragment of a live image; kept',
    );
  });
  if (deleted.length > 0)
    log.info(
      {
        datanode: datanodeId,
        files: deleted.map((d) => ({ fragment: d.fragmentId, reason: reasonOf(d), image: d.imageKey ?? undefined })),
      },
      deleted.length === 1 ? 'replica file deleted' : 'replica files deleted',
    );
  const settled = deleted.concat(kept);
  // Sent again as surplus, acknowledged as queued (the row keeps its own reason).
  return surplus.length > 0 ? settled.concat(await deleteOn(deps, datanodeId, url, surplus, 'surplus-replica')) : settled;
}

export function createReplicaDeleter({
  catalog,
  registry,
  client,
  log,
  scheduler,
  replicationFactor,
  pollMs = 1000,
  now = Date.now,
  clock,
  clusterIdentity,
}: {
  catalog: Catalog;
  scheduler: Scheduler;
  replicationFactor: number;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  pollMs?: number;
  now?: () => number;
  /** Monotonic milliseconds for the spacing of rounds (tests pass their own). */
  clock?: () => number;
  /** Without a known cluster id every datanode refuses a deletion: the queue waits for it (absent in tests with fake datanodes). */
  clusterIdentity?: Pick<ClusterIdentity, 'refresh'>;
}) {
  const deps = { catalog, client, log, replicationFactor, now };
  const spacer = roundSpacer(BURST_ROUNDS, clock);

  async function drain() {
    for (;;) {
      // During a burst of deletes a round waits for the burst to pause (round-spacing.ts), so
      // that it carries many deletes' files.
      for (let wait = spacer.wait(); wait > 0; wait = spacer.wait()) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        // A kick deferred past a stop finds the loop stopped (and the index perhaps closed).
        if (loop.stopped) return;
      }
      if (loop.stopped) return;
      // Not known yet (the row is read again, so the id another coordinator established is
      // adopted): the deletions stay queued, not backed off by refusals, until a later pass.
      if (clusterIdentity && (await clusterIdentity.refresh()) === undefined) return;
      const due = await catalog.dueDeletions(now(), BATCH);
      if (due.length === 0 || loop.stopped) return;
      // A round starts only when there is work: an empty pass (the periodic one) must not make
      // the next lone delete's files wait for the spacing.
      spacer.started();
      const recorded = await settleRecordedWrites(deps, due);
      const settled: ReplicaDeletion[] = [];
      const perNode = new Map<string, ReplicaDeletion[]>();
      for (const d of due) {
        // A recorded replica: already settled by the index, nothing to ask or acknowledge.
        if (recorded.has(d)) continue;
        // The datanode was removed from the cluster: nothing to ask.
        if (!registry.get(d.datanodeId)) settled.push(d);
        // Checked again later; cheap while it stays DOWN.
        else if (!registry.isLive(d.datanodeId)) await catalog.postponeDeletion(d, now() + pollMs * 5);
        else {
          let list = perNode.get(d.datanodeId);
          if (!list) perNode.set(d.datanodeId, (list = []));
          list.push(d);
        }
      }
      // One request per datanode, all at once; one transaction (one WAL commit) acknowledges the
      // round, each row only if it is still queued as it was read: a deletion that replaced it
      // meanwhile (its image deleted) was not sent, and stays queued.
      const done = await Promise.all([...perNode].map(([id, ds]) => deleteOn(deps, id, registry.get(id)!.url, ds)));
      await catalog.ackDeletions(settled.concat(...done));
    }
  }

  const loop = scheduler.loop('replica deletion', drain, { everyMs: pollMs });

  // A kick from deleteImage runs after its answer went out, and the kicks of a burst share one
  // pass (whose round carries all their files).
  let soon: Promise<void> | undefined;
  const kick = (): Promise<void> => {
    spacer.arrived();
    return (soon ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        soon = undefined;
        void loop.kick().then(resolve, resolve);
      }),
    ));
  };

  return {
    kick,
    /**
     * A datanode is live again: the deletions it missed are due at once, not at their next check.
     * Never rejects (the status change that calls it does not wait): an index that refuses the
     * write (cut off, fenced) leaves them due at their next check.
     */
    async datanodeLive(datanodeId: string): Promise<void> {
      await catalog
        .resumeDeletionsOn(datanodeId, now())
        .catch((err: Error) => log.warn({ datanode: datanodeId, err: err.message }, RESUME_FAILED));
      return kick();
    },
    start: loop.start,
    /** Resolves once nothing is due (tests and shutdown). */
    idle: loop.idle,
    stop: loop.stop,
  };
}

export type ReplicaDeleter = ReturnType<typeof createReplicaDeleter>;
