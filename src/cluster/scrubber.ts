// The scrubber: re-reads every replica at a gentle byte rate, verifies it against the index and
// reports the corrupt or missing ones to the repairer (which announces them as ReplicaFault).
// One pass, then a pause, then the next.
import type { Logger } from 'pino';
import type { Catalog } from '../metadata/catalog.ts';
import { isUnreadable, type DatanodeClient } from './datanode-client.ts';
import type { Registry } from './registry.ts';
import { sha256Hex, type BadReplica } from './replicas.ts';
import { createThrottle } from './throttle.ts';

export function createScrubber({ catalog, registry, client, log, bytesPerSecond, pauseMs, onBad }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  bytesPerSecond: number;
  /** Between two full passes. */
  pauseMs: number;
  onBad: (bad: BadReplica) => void;
}) {
  const throttle = createThrottle(bytesPerSecond);
  const state = { stopped: true };
  let cursor = { fragmentId: '', datanodeId: '' };
  let loop: Promise<void> | undefined;
  let passes = 0;
  let wake: (() => void) | undefined;

  /** Checks the next page of replicas; false at the end of a pass. */
  async function step(): Promise<boolean> {
    const page = catalog.replicaPage(cursor, 16);
    if (page.length === 0) return false;
    for (const replica of page) {
      if (state.stopped) return true;
      cursor = { fragmentId: replica.fragmentId, datanodeId: replica.datanodeId };
      const node = registry.get(replica.datanodeId);
      if (!node || !registry.isLive(node.id)) continue; // DOWN ones are the repairer's
      let reason: BadReplica['reason'] | undefined;
      try {
        const data = await client.getFragment(node.url, replica.fragmentId);
        if (data === undefined) reason = 'missing';
        else if (sha256Hex(data) !== replica.sha256) reason = 'corrupt';
      } catch (err) {
        if (!isUnreadable(err)) continue; // unreachable: the monitor's business
        reason = 'unreadable'; // it answered, but cannot read its file: rewritten like a corrupt one
      }
      await throttle.consume(replica.size, state);
      if (reason && catalog.accountsFor(replica.fragmentId, replica.datanodeId)) {
        const bad = { fragmentId: replica.fragmentId, datanodeId: replica.datanodeId, reason };
        log.warn(bad, 'scrub found a bad replica');
        onBad(bad); // announced (ReplicaFault) and repaired by the repairer
      }
    }
    return true;
  }

  async function run() {
    while (!state.stopped) {
      try {
        if (await step()) continue;
      } catch (err) {
        log.error({ err }, 'scrub step failed');
      }
      cursor = { fragmentId: '', datanodeId: '' };
      passes += 1;
      // The pause (an hour by default) ends early on stop(), or stop() would wait it out.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pauseMs).unref();
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    get passes() {
      return passes;
    },
    start() {
      state.stopped = false;
      loop = run();
    },
    async stop() {
      state.stopped = true;
      wake?.();
      await loop;
    },
  };
}
