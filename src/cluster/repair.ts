// Self-repair, one throttled loop of three steps: replicas found corrupt or missing are rewritten
// in place from a verified copy (repair-in-place.ts), the fragments of lost datanodes are copied
// until R replicas count again (re-replication.ts), and the excess a returning datanode leaves is
// trimmed as placement prefers (excess-replicas.ts).
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { AsyncReplicationQueries as ReplicationQueries } from '../metadata/store.ts';
import type { EventBus } from '../events.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import type { BadReplica, Replicas } from './replicas.ts';
import { createThrottle } from './throttle.ts';
import type { Scheduler } from '../shared/scheduler.ts';
import { createExcessTrimmer } from './excess-replicas.ts';
import { createInPlaceRepair } from './repair-in-place.ts';
import { createReReplication } from './re-replication.ts';

/** Before work that failed is tried again, unless a datanode changes status first. */
const RETRY_MS = 30_000;

export function createRepairer({
  catalog,
  replication,
  registry,
  replicas,
  client,
  events,
  log,
  scheduler,
  replicationFactor,
  repairAfterMs,
  bytesPerSecond,
  concurrency = 2,
  pollMs = 1000,
  now = Date.now,
}: {
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
  const trimmer = createExcessTrimmer({ catalog, queries: replication, registry, client, log, replicationFactor, now });
  const inPlace = createInPlaceRepair({ catalog, registry, replicas, client, events, log, throttle, retryMs: RETRY_MS, now });
  const reReplication = createReReplication({
    catalog,
    replication,
    registry,
    replicas,
    events,
    log,
    throttle,
    trimmer,
    replicationFactor,
    repairAfterMs,
    concurrency,
    retryMs: RETRY_MS,
    now,
  });

  const loop = scheduler.loop(
    'repair',
    async () => {
      // 1. Suspect replicas reported by reads, the scrubber and the reconciler.
      await inPlace.pass(loop);
      if (loop.stopped) return;
      // 2. Fragments lost datanodes left short of R copies, riskiest first.
      await reReplication.pass(loop);
      if (loop.stopped) return;
      // 3. Fragments with more than R replicas (a lost datanode came back): keep placement's R.
      await trimmer.trimIfDue(loop);
    },
    { everyMs: pollMs },
  );
  const kick = loop.kick;

  return {
    /**
     * A replica that failed verification or was missing (found by a read, the scrubber or the
     * reconciler): announced as a ReplicaFault, repaired on the next pass.
     */
    report(bad: BadReplica) {
      if (inPlace.report(bad)) void kick();
    },
    kick,
    /**
     * A datanode changed status: a copy that was unreadable or a target that was missing may be
     * back, so failed work is retried now rather than after its delay.
     */
    datanodesChanged() {
      reReplication.retryNow();
      trimmer.markDue();
      inPlace.retryNow();
      void kick();
    },
    start() {
      reReplication.start();
      loop.start();
    },
    idle: loop.idle,
    stop: loop.stop,
  };
}

export type Repairer = ReturnType<typeof createRepairer>;
