// The scrubber: re-reads every replica at a gentle byte rate, verifies it against the index and
// reports the corrupt or missing ones to the repairer (which announces them as ReplicaFault).
// One pass, then a pause, then the next.
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { Scheduler } from '../shared/scheduler.ts';
import { isUnreadable, type DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import { sha256Hex, type BadReplica } from './replicas.ts';
import { createThrottle } from './throttle.ts';

/** Replicas read from the index per page. */
const PAGE = 16;

type Replica = Awaited<ReturnType<Catalog['replicaPage']>>[number];

/** What a re-read of one replica found: 'unchecked' when its datanode did not answer (the monitor's business). */
async function verify(client: DatanodeClient, url: string, replica: Replica): Promise<BadReplica['reason'] | 'verified' | 'unchecked'> {
  try {
    const data = await client.getFragment(url, replica.fragmentId);
    if (data === undefined) return 'missing';
    return sha256Hex(data) === replica.sha256 ? 'verified' : 'corrupt';
  } catch (err) {
    // It answered, but cannot read its file: rewritten like a corrupt one.
    return isUnreadable(err) ? 'unreadable' : 'unchecked';
  }
}

export function createScrubber({
  catalog,
  registry,
  client,
  log,
  scheduler,
  bytesPerSecond,
  pauseMs,
  onBad,
}: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  scheduler: Scheduler;
  bytesPerSecond: number;
  /** Between two full passes. */
  pauseMs: number;
  onBad: (bad: BadReplica) => void;
}) {
  const throttle = createThrottle(bytesPerSecond);
  let cursor = { fragmentId: '', datanodeId: '' };

  /** Checks the next page of replicas; false at the end of a pass. */
  async function step(): Promise<boolean> {
    const page = await catalog.replicaPage(cursor, PAGE);
    if (page.length === 0) return false;
    for (const replica of page) {
      if (loop.stopped) return true;
      cursor = { fragmentId: replica.fragmentId, datanodeId: replica.datanodeId };
      const node = registry.get(replica.datanodeId);
      if (!node || !registry.isLive(node.id)) continue; // DOWN ones are the repairer's
      const reason = await verify(client, node.url, replica);
      if (reason === 'unchecked') continue;
      await throttle.consume(replica.size, loop);
      if (reason !== 'verified' && (await catalog.accountsFor(replica.fragmentId, replica.datanodeId))) {
        const bad = { fragmentId: replica.fragmentId, datanodeId: replica.datanodeId, reason };
        log.warn(bad, 'scrub found a bad replica');
        onBad(bad); // announced (ReplicaFault) and repaired by the repairer
      }
    }
    return true;
  }

  /** Every replica once (resumed where stop() interrupted it); a failed step ends the pass. */
  async function pass(): Promise<void> {
    try {
      while (await step()) if (loop.stopped) return;
    } catch (err) {
      log.error({ err }, 'scrub step failed');
    }
    cursor = { fragmentId: '', datanodeId: '' };
  }

  const loop = scheduler.loop('scrub', pass, { everyMs: pauseMs });

  return { start: loop.start, kick: loop.kick, idle: loop.idle, stop: loop.stop };
}
