// Read-repair and scrub-repair: a replica found corrupt, missing or unreadable (by a read, the
// scrubber or the reconciler) is announced once as a ReplicaFault and rewritten in place from a
// verified copy on the repairer's next pass; one that cannot be repaired now is tried again later.
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { EventBus } from '../events.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import type { BadReplica, Replicas } from './replicas.ts';
import type { Throttle } from './throttle.ts';
import { recordOrRelease } from './intent-release.ts';

/** What each step of the repairer works with (re-replication.ts too). */
export interface RepairStepDeps {
  catalog: Catalog;
  registry: Registry;
  replicas: Replicas;
  events: EventBus;
  log: Logger;
  throttle: Throttle;
  /** Before work that failed is tried again, unless a datanode changes status first. */
  retryMs: number;
  now: () => number;
}

export interface InPlaceRepairDeps extends RepairStepDeps {
  client: DatanodeClient;
}

type Signal = { readonly stopped: boolean };

export function createInPlaceRepair(deps: InPlaceRepairDeps) {
  const { registry, events, log, retryMs, now } = deps;
  /** Replicas to rewrite in place (key fragment:datanode), each with the time it is due. */
  const suspects = new Map<string, { bad: BadReplica; due: number }>();
  /** Faults announced (ReplicaFault) and not yet repaired: one event per fault, however many reads stumble on it. */
  const announced = new Set<string>();

  return {
    /** Announces the fault (once) and makes its repair due now. False for what is not ours to repair. */
    report(bad: BadReplica): boolean {
      if (bad.reason === 'unreachable') return false; // the monitor decides about dead datanodes
      const key = `${bad.fragmentId}:${bad.datanodeId}`;
      const node = registry.get(bad.datanodeId);
      if (node && !announced.has(key)) {
        announced.add(key);
        events.emit({
          kind: 'ReplicaFault',
          message: `The replica of fragment ${bad.fragmentId} on ${node.id} is ${bad.reason}.`,
          fragmentId: bad.fragmentId,
          datanode: { ...node },
          reason: bad.reason,
        });
      }
      suspects.set(key, { bad, due: 0 });
      return true;
    },
    /** Repairs that failed are due again now (a datanode changed status). */
    retryNow() {
      for (const s of suspects.values()) s.due = 0;
    },
    /** Rewrites every due suspect; one that fails waits retryMs (or is dropped with its datanode). */
    async pass(signal: Signal): Promise<void> {
      const due = [...suspects.entries()].filter(([, s]) => s.due <= now());
      for (const [key] of due) suspects.delete(key);
      for (const [key, { bad }] of due) {
        if (signal.stopped) return;
        try {
          await rewrite(deps, bad, signal);
          if (!suspects.has(key)) announced.delete(key);
        } catch (err) {
          // No good copy now (or the datanode refused): again later, not at every poll.
          log.warn({ ...bad, err: (err as Error).message }, 'replica repair failed; will retry');
          if (registry.isLive(bad.datanodeId) && !suspects.has(key)) suspects.set(key, { bad, due: now() + retryMs });
          else if (!suspects.has(key)) announced.delete(key);
        }
      }
    },
  };
}

/** Rewrites one replica from a verified copy on another holder. */
async function rewrite(deps: InPlaceRepairDeps, bad: BadReplica, signal: Signal): Promise<void> {
  const { catalog, registry, replicas, client, events, log, throttle, now } = deps;
  const fragment = await catalog.fragmentById(bad.fragmentId);
  const node = registry.get(bad.datanodeId);
  const holders = fragment ? await catalog.replicasOf(fragment.id) : [];
  if (!fragment || !node || !holders.includes(bad.datanodeId) || !registry.isLive(node.id)) return; // gone or handled as lost
  const good = await replicas.read({ ...fragment, replicas: holders.filter((d) => d !== bad.datanodeId) });
  // As any write: an intent first, so a rewrite that races a delete of the image is cleaned up.
  await catalog.addWriteIntents(fragment.id, [node.id]);
  let putError: Error | undefined;
  await client.putFragment(node.url, fragment.id, good, fragment.sha256).catch((err: Error) => void (putError = err));
  // Recorded again, which ends the intent, whether the put succeeded or not. Deleted meanwhile, or
  // the recording failed (the index cut off, fenced): the intent is released (retried until the
  // database takes it, else it would cover the copy until the restart); a copy the index still
  // records stays, one it no longer does goes. A failure is still this repair's, retried later.
  let recorded: boolean;
  try {
    recorded = await recordOrRelease(deps, fragment.id, [node.id], () => catalog.moveReplicas(fragment.id, [node.id], [], now()));
  } catch (err) {
    // The recording's error is the one thrown (the pass logs it): the put's would be lost unsaid.
    if (putError)
      log.warn({ fragment: fragment.id, datanode: node.id, err: putError.message }, 'replica rewrite failed, then its recording');
    throw err;
  }
  // The fragment was deleted meanwhile: nothing to repair, whether the put failed or not (its copy,
  // if any, went to the deleter).
  if (!recorded) return;
  if (putError) throw putError;
  await throttle.consume(good.length, signal);
  log.info({ fragment: fragment.id, datanode: node.id, reason: bad.reason }, 'replica repaired in place');
  events.emit({
    kind: 'ReplicaRepaired',
    message: `Rewrote the ${bad.reason} replica of fragment ${fragment.id} on ${node.id}.`,
    fragmentId: fragment.id,
    datanode: { ...node },
    reason: bad.reason,
  });
}
