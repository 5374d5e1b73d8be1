// Self-repair: replicas found corrupt or missing are rewritten in place from a verified copy
// (read-repair and scrub-repair), and the fragments of a datanode DOWN past --repair-after, or
// draining, are copied to other live datanodes until each has R verified replicas again,
// riskiest first (repair-queue.ts). A DOWN datanode's replicas stay recorded: if it returns with
// its data, copying stops and the excess is trimmed as placement prefers (excess-replicas.ts);
// a draining datanode's replica is forgotten once R others exist. Throttled.
import type { Logger } from 'pino';
import type { Catalog, FragmentRow } from '../metadata/catalog.ts';
import type { ReplicationQueries } from '../metadata/replication.ts';
import type { EventBus } from '../events.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import type { BadReplica, Replicas } from './replicas.ts';
import { createThrottle } from './throttle.ts';
import type { Scheduler } from '../shared/scheduler.ts';
import { createRepairQueue } from './repair-queue.ts';
import { createExcessTrimmer } from './excess-replicas.ts';

const BATCH = 32;
/** Before work that failed is tried again, unless a datanode changes status first. */
const RETRY_MS = 30_000;

export function createRepairer({ catalog, replication, registry, replicas, client, events, log, scheduler, replicationFactor, repairAfterMs, bytesPerSecond, concurrency = 2, pollMs = 1000, now = Date.now }: {
  catalog: Catalog;
  replication: ReplicationQueries;
  registry: Registry;
  replicas: Replicas;
  client: DatanodeClient;
  events: EventBus;
  log: Logger;
  scheduler: Scheduler;
  replicationFactor: number;
  repairAfterMs: number;
  bytesPerSecond: number;
  concurrency?: number;
  pollMs?: number;
  now?: () => number;
}) {
  const throttle = createThrottle(bytesPerSecond);
  /** Replicas to rewrite in place (key fragment:datanode), each with the time it is due. */
  const suspects = new Map<string, { bad: BadReplica; due: number }>();
  /** Faults announced (ReplicaFault) and not yet repaired: one event per fault, however many reads stumble on it. */
  const announced = new Set<string>();
  /** Fragments that could not be re-replicated (no readable copy, no room): retried later. */
  const stuck = new Map<string, number>();
  const queue = createRepairQueue({ registry, queries: replication, replicationFactor });
  const trimmer = createExcessTrimmer({ catalog, queries: replication, registry, client, log, replicationFactor, now });

  /**
   * When this repairer started: a status read back from the index after a restart is not yet
   * confirmed by a sample, so DOWN time counts from here at the earliest (else a datanode that
   * was DOWN before the restart and is back now would be copied off before its first sample).
   */
  let startedAt = Number.POSITIVE_INFINITY;

  /** Datanodes whose replicas no longer count: DOWN past the delay, or draining. */
  const lostDatanodes = () =>
    new Set(
      registry
        .all()
        .filter((n) => n.draining || ((n.status === 'DOWN' || n.status === null) && now() - Math.max(n.statusSince, startedAt) >= repairAfterMs))
        .map((n) => n.id),
    );

  async function repairInPlace(bad: BadReplica) {
    const fragment = catalog.fragmentById(bad.fragmentId);
    const node = registry.get(bad.datanodeId);
    const holders = fragment ? catalog.replicasOf(fragment.id) : [];
    if (!fragment || !node || !holders.includes(bad.datanodeId) || !registry.isLive(node.id)) return; // gone or handled as lost
    const good = await replicas.read({ ...fragment, replicas: holders.filter((d) => d !== bad.datanodeId) });
    // As any write: an intent first, so a rewrite that races a delete of the image is cleaned up.
    catalog.addWriteIntents(fragment.id, [node.id]);
    try {
      await client.putFragment(node.url, fragment.id, good, fragment.sha256);
    } finally {
      if (!catalog.moveReplicas(fragment.id, [node.id], [], now())) catalog.releaseWriteIntents(fragment.id, [node.id], now());
    }
    await throttle.consume(good.length, loop);
    log.info({ fragment: fragment.id, datanode: node.id, reason: bad.reason }, 'replica repaired in place');
    events.emit({ kind: 'ReplicaRepaired', message: `Rewrote the ${bad.reason} replica of fragment ${fragment.id} on ${node.id}.`, fragmentId: fragment.id, datanode: { ...node }, reason: bad.reason });
  }

  /**
   * Copies the fragment until R replicas count again (on datanodes not lost). The lost replicas
   * of a DOWN datanode stay recorded (it may return with them); a draining one's is forgotten
   * (its file deleted) once R others exist. Does nothing once no holder is lost any more.
   * False when nothing changed.
   */
  async function reReplicate(fragment: FragmentRow): Promise<boolean> {
    const lost = lostDatanodes(); // afresh: a datanode that came back meanwhile is no longer copied off
    const holders = catalog.replicasOf(fragment.id);
    const kept = holders.filter((d) => !lost.has(d) && registry.get(d));
    const lostHere = holders.filter((d) => lost.has(d));
    if (lostHere.length === 0) return false;
    const need = Math.max(replicationFactor - kept.length, 0);
    let added: string[] = [];
    if (need > 0) {
      // Read from any holder that answers (a draining one is fine), verified against the index.
      const data = await replicas.read({ ...fragment, replicas: [...kept, ...lostHere] });
      // Not onto a datanode whose copy of it is queued for deletion: that DELETE could land after the PUT.
      added = await replicas.write(fragment.id, data, fragment.sha256, need, new Set([...holders, ...catalog.deletionTargetsOf(fragment.id)]));
      await throttle.consume(data.length * added.length, loop);
    }
    const dropped = lostHere.filter((d) => registry.get(d)?.draining);
    if (added.length === 0 && dropped.length === 0) return false;
    if (!catalog.moveReplicas(fragment.id, added, dropped, now())) {
      catalog.releaseWriteIntents(fragment.id, added, now()); // deleted meanwhile: the new copies go too
      return true;
    }
    // A lost datanode may be back by now: its copy and the new one are then one too many.
    if (added.length > 0) trimmer.markDue();
    for (const d of added) {
      const node = registry.get(d)!;
      events.emit({ kind: 'ReplicaRepaired', message: `Copied fragment ${fragment.id} to ${d} (re-replication).`, fragmentId: fragment.id, datanode: { ...node }, reason: 're-replication' });
    }
    return true;
  }

  /** The next fragments to copy: the riskiest first, then what draining datanodes still hold. */
  function nextBatch(lost: Set<string>): FragmentRow[] {
    const skip = [...stuck.entries()].filter(([, until]) => until > now()).map(([id]) => id);
    const atRisk = queue.next(lost, skip, BATCH);
    if (atRisk.length > 0) return atRisk;
    for (const id of lost) {
      if (!registry.get(id)?.draining) continue;
      const batch = catalog.fragmentsOn(id, BATCH + skip.length).filter((f) => !skip.includes(f.id)).slice(0, BATCH);
      if (batch.length > 0) return batch;
    }
    return [];
  }

  async function pass() {
    // 1. Suspect replicas reported by reads, the scrubber and the reconciler.
    const due = [...suspects.entries()].filter(([, s]) => s.due <= now());
    for (const [key] of due) suspects.delete(key);
    for (const [key, { bad: b }] of due) {
      if (loop.stopped) return;
      try {
        await repairInPlace(b);
        if (!suspects.has(key)) announced.delete(key);
      } catch (err) {
        // No good copy now (or the datanode refused): again later, not at every poll.
        log.warn({ ...b, err: (err as Error).message }, 'replica repair failed; will retry');
        if (registry.isLive(b.datanodeId) && !suspects.has(key)) suspects.set(key, { bad: b, due: now() + RETRY_MS });
        else if (!suspects.has(key)) announced.delete(key);
      }
    }
    // 2. Fragments lost datanodes left short of R copies, riskiest first. Re-read after every
    // `concurrency` copies when the set of lost datanodes changes: one that returns stops being
    // copied off, one newly lost gets its riskiest fragments in the next round of copies.
    for (;;) {
      if (loop.stopped) return;
      const lost = lostDatanodes();
      trimmer.noteLost(lost);
      const batch = nextBatch(lost);
      if (batch.length === 0) break;
      const lostKey = [...lost].sort().join();
      for (let i = 0; i < batch.length; i += concurrency) {
        if (loop.stopped) return;
        if (i > 0 && [...lostDatanodes()].sort().join() !== lostKey) break;
        await Promise.all(batch.slice(i, i + concurrency).map(async (f) => {
          try {
            // No progress (its datanode is back, or nothing to do): not picked again at once.
            if (!(await reReplicate(f))) stuck.set(f.id, now() + RETRY_MS);
          } catch (err) {
            stuck.set(f.id, now() + RETRY_MS);
            log.warn({ fragment: f.id, err: (err as Error).message }, 're-replication failed; will retry');
          }
        }));
      }
    }
    for (const [id, until] of stuck) if (until <= now()) stuck.delete(id);
    // 3. Fragments with more than R replicas (a lost datanode came back): keep placement's R.
    await trimmer.trimIfDue(loop);
  }

  const loop = scheduler.loop('repair', pass, { everyMs: pollMs });
  const kick = loop.kick;

  return {
    /**
     * A replica that failed verification or was missing (found by a read, the scrubber or the
     * reconciler): announced as a ReplicaFault, repaired on the next pass.
     */
    report(bad: BadReplica) {
      if (bad.reason === 'unreachable') return; // the monitor decides about dead datanodes
      const key = `${bad.fragmentId}:${bad.datanodeId}`;
      const node = registry.get(bad.datanodeId);
      if (node && !announced.has(key)) {
        announced.add(key);
        events.emit({ kind: 'ReplicaFault', message: `The replica of fragment ${bad.fragmentId} on ${node.id} is ${bad.reason}.`, fragmentId: bad.fragmentId, datanode: { ...node }, reason: bad.reason });
      }
      suspects.set(key, { bad, due: 0 });
      void kick();
    },
    kick,
    /**
     * A datanode changed status: a copy that was unreadable or a target that was missing may be
     * back, so failed work is retried now rather than after its delay.
     */
    datanodesChanged() {
      stuck.clear();
      trimmer.markDue();
      for (const s of suspects.values()) s.due = 0;
      void kick();
    },
    start() {
      startedAt = now();
      loop.start();
    },
    idle: loop.idle,
    stop: loop.stop,
  };
}

export type Repairer = ReturnType<typeof createRepairer>;
