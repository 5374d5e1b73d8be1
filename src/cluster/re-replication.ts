// Re-replication: the fragments of datanodes DOWN past --repair-after, or draining, are copied to
// other live datanodes until each has R replicas that count again, riskiest first
// (repair-queue.ts). A DOWN datanode's replicas stay recorded: if it returns with its data, copying
// stops and the excess is trimmed (excess-replicas.ts); a draining datanode's replica is
// forgotten once R others exist.
import type { FragmentRow } from '../metadata/catalog.ts';
import type { AsyncReplicationQueries as ReplicationQueries } from '../metadata/store.ts';
import type { RepairStepDeps } from './repair-in-place.ts';
import type { ExcessTrimmer } from './excess-replicas.ts';
import { recordOrRelease } from './intent-release.ts';
import { createRepairQueue } from './repair-queue.ts';

const BATCH = 32;

export interface ReReplicationDeps extends RepairStepDeps {
  replication: ReplicationQueries;
  trimmer: ExcessTrimmer;
  replicationFactor: number;
  repairAfterMs: number;
  concurrency: number;
}

type Signal = { readonly stopped: boolean };

export function createReReplication(deps: ReReplicationDeps) {
  const { catalog, registry, log, trimmer, concurrency, retryMs, now } = deps;
  const queue = createRepairQueue({ registry, queries: deps.replication, replicationFactor: deps.replicationFactor });
  /** Fragments that could not be re-replicated (no readable copy, no room): retried after their time. */
  const stuck = new Map<string, number>();
  /**
   * When the repairer started: a status read back from the index after a restart is not yet
   * confirmed by a sample, so DOWN time counts from here at the earliest (else a datanode that
   * was DOWN before the restart and is back now would be copied off before its first sample).
   */
  let startedAt = Number.POSITIVE_INFINITY;

  /** Datanodes whose replicas no longer count: DOWN past the delay, or draining. */
  const lostDatanodes = () =>
    new Set(
      registry
        .all()
        .filter(
          (n) =>
            n.draining || ((n.status === 'DOWN' || n.status === null) && now() - Math.max(n.statusSince, startedAt) >= deps.repairAfterMs),
        )
        .map((n) => n.id),
    );

  /** The next fragments to copy: the riskiest first, then what draining datanodes still hold. */
  async function nextBatch(lost: Set<string>): Promise<FragmentRow[]> {
    const skip = [...stuck.entries()].filter(([, until]) => until > now()).map(([id]) => id);
    const atRisk = await queue.next(lost, skip, BATCH);
    if (atRisk.length > 0) return atRisk;
    for (const id of lost) {
      if (!registry.get(id)?.draining) continue;
      const batch = (await catalog.fragmentsOn(id, BATCH + skip.length)).filter((f) => !skip.includes(f.id)).slice(0, BATCH);
      if (batch.length > 0) return batch;
    }
    return [];
  }

  async function copyOne(fragment: FragmentRow, signal: Signal): Promise<void> {
    try {
      // No progress (its datanode is back, or nothing to do): not picked again at once.
      if (!(await reReplicate(deps, fragment, lostDatanodes(), signal))) stuck.set(fragment.id, now() + retryMs);
    } catch (err) {
      stuck.set(fragment.id, now() + retryMs);
      log.warn({ fragment: fragment.id, err: (err as Error).message }, 're-replication failed; will retry');
    }
  }

  return {
    start() {
      startedAt = now();
    },
    /** Fragments that failed are due again now (a datanode changed status). */
    retryNow() {
      stuck.clear();
    },
    /**
     * Copies until no fragment is short. The lost set is re-read after every `concurrency`
     * copies: a datanode that returns stops being copied off, one newly lost gets its riskiest
     * fragments in the next round of copies.
     */
    async pass(signal: Signal): Promise<void> {
      for (;;) {
        if (signal.stopped) return;
        const lost = lostDatanodes();
        trimmer.noteLost(lost);
        const batch = await nextBatch(lost);
        if (batch.length === 0) break;
        const lostKey = [...lost].sort().join();
        for (let i = 0; i < batch.length; i += concurrency) {
          if (signal.stopped) return;
          if (i > 0 && [...lostDatanodes()].sort().join() !== lostKey) break;
          await Promise.all(batch.slice(i, i + concurrency).map((f) => copyOne(f, signal)));
        }
      }
      for (const [id, until] of stuck) if (until <= now()) stuck.delete(id);
    },
  };
}

/**
 * Copies the fragment until R replicas count again (on datanodes not `lost`, read afresh: a
 * datanode that came back meanwhile is no longer copied off). A draining holder's replica is
 * forgotten (its file deleted) once R others exist. False when nothing changed.
 */
async function reReplicate(deps: ReReplicationDeps, fragment: FragmentRow, lost: Set<string>, signal: Signal): Promise<boolean> {
  const { catalog, registry, replicas, events, throttle, trimmer, replicationFactor, now } = deps;
  const holders = await catalog.replicasOf(fragment.id);
  const kept = holders.filter((d) => !lost.has(d) && registry.get(d));
  const lostHere = holders.filter((d) => lost.has(d));
  if (lostHere.length === 0) return false;
  const need = Math.max(replicationFactor - kept.length, 0);
  let added: string[] = [];
  if (need > 0) {
    // Read from any holder that answers (a draining one is fine), verified against the index.
    const data = await replicas.read({ ...fragment, replicas: [...kept, ...lostHere] });
    // Not onto a datanode whose copy of it is queued for deletion: that DELETE could land after the PUT.
    added = await replicas.write(
      fragment.id,
      data,
      fragment.sha256,
      need,
      new Set([...holders, ...(await catalog.deletionTargetsOf(fragment.id))]),
    );
    await throttle.consume(data.length * added.length, signal);
  }
  const dropped = lostHere.filter((d) => registry.get(d)?.draining);
  if (added.length === 0 && dropped.length === 0) return false;
  // Deleted meanwhile, or the recording failed (the index cut off, fenced): the new copies go as
  // any unrecorded write (the release retried until the database takes it, else their intents
  // would keep them until the restart); a failure is still this fragment's, retried later.
  if (!(await recordOrRelease(deps, fragment.id, added, () => catalog.moveReplicas(fragment.id, added, dropped, now())))) return true;
  // A lost datanode may be back by now: its copy and the new one are then one too many.
  if (added.length > 0) trimmer.markDue();
  for (const d of added) {
    const node = registry.get(d)!;
    events.emit({
      kind: 'ReplicaRepaired',
      message: `Copied fragment ${fragment.id} to ${d} (re-replication).`,
      fragmentId: fragment.id,
      datanode: { ...node },
      reason: 're-replication',
    });
  }
  return true;
}
