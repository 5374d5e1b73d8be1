// Tombstones of deletions already durable in the index, pushed to datanodes in the background,
// oldest first, so that deleteImage answers without waiting for a datanode. One round is in
// flight at a time, and it carries every tombstone queued meanwhile in one request per datanode
// (POST /deletions): a burst of deletes costs a few requests and journal syncs, not one each.
// One that no datanode took is tried again with backoff.
import type { Logger } from 'pino';
import type { ImageTombstone } from '../shared/datanode-api.ts';
import type { Registry } from './registry.ts';
import { roundSpacer, TOMBSTONE_ROUNDS } from '../shared/round-spacing.ts';

/** Tombstones one round sends at most (each datanode gets them in one request). */
const ROUND_LIMIT = 512;
const MAX_ATTEMPTS = 12;
const MAX_BACKOFF_MS = 60_000;
const FLUSH_TIMEOUT_MS = 5_000;

/**
 * The live datanodes holding none of the image's files: the holders get the tombstone with the
 * deletion of their files (the datanode records it before it removes the file). All live ones
 * when each of them holds some.
 */
export function tombstoneTargets(registry: Registry, holders: ReadonlySet<string>): string[] {
  const live = registry.live().map((n) => n.id);
  const others = live.filter((id) => !holders.has(id));
  return others.length > 0 ? others : live;
}

interface Pending {
  tombstone: ImageTombstone;
  holders: ReadonlySet<string>;
  attempts: number;
}

/** The tombstones each datanode is to get. */
function byTarget(batch: Pending[], targets: (holders: ReadonlySet<string>) => string[]): Map<string, Pending[]> {
  const perNode = new Map<string, Pending[]>();
  for (const p of batch) {
    for (const id of targets(p.holders)) {
      let list = perNode.get(id);
      if (!list) perNode.set(id, (list = []));
      list.push(p);
    }
  }
  return perNode;
}

const tombstonesOf = (list: Pending[]) => list.map((p) => p.tombstone);

interface TombstoneQueueDeps {
  log: Logger;
  targets: (holders: ReadonlySet<string>) => string[];
  /** Records these tombstones on one datanode, durably. */
  put: (datanodeId: string, tombstones: ImageTombstone[]) => Promise<unknown>;
  /** The tombstone is in at least one datanode's records: every later reading of them holds it. */
  delivered: (imageKey: string) => void;
  /** Monotonic milliseconds for the spacing of rounds (tests pass their own). */
  clock?: () => number;
}

export function createTombstoneQueue({ log, targets, put, delivered, clock }: TombstoneQueueDeps) {
  const queue: Pending[] = [];
  let running = false;
  let scheduled = false;
  const waiters: (() => void)[] = [];
  const spacer = roundSpacer(TOMBSTONE_ROUNDS, clock); // never waits for a burst to pause (round-spacing.ts)

  function retryLater(p: Pending): void {
    p.attempts += 1;
    if (p.attempts >= MAX_ATTEMPTS) {
      // The queued deletions of its files still tombstone it on every datanode holding them.
      log.warn({ image: p.tombstone.image, attempts: p.attempts }, 'no datanode took the tombstone; left to the file deletions');
      return;
    }
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** p.attempts);
    setTimeout(() => push(p), backoff).unref();
  }

  /** One round: every tombstone taken goes to each of its targets, one request per datanode. */
  async function round(batch: Pending[]): Promise<void> {
    const perNode = byTarget(batch, targets);
    const took = new Set<Pending>();
    await Promise.all(
      [...perNode].map(async ([id, list]) => {
        try {
          await put(id, tombstonesOf(list));
        } catch {
          return; // another target may take it; if none does, it is retried below
        }
        // Delivered with the first datanode that took it, not once the slowest answered.
        for (const p of list) {
          if (took.has(p)) continue;
          took.add(p);
          delivered(p.tombstone.image);
        }
      }),
    );
    for (const p of batch) if (!took.has(p)) retryLater(p);
  }

  function pump(): void {
    scheduled = false;
    if (running || queue.length === 0) return;
    if (spacer.wait() > 0) return schedule(); // rounds are spaced (TOMBSTONE_ROUNDS)
    running = true;
    spacer.started();
    void round(queue.splice(0, ROUND_LIMIT)).finally(() => {
      running = false;
      if (queue.length > 0) schedule();
      else for (const resolve of waiters.splice(0)) resolve();
    });
  }

  /** The next round: after the current work (deleteImage's answer goes out first), spaced during a burst (round-spacing.ts). */
  function schedule(): void {
    if (running || scheduled) return;
    scheduled = true;
    const wait = spacer.wait();
    if (wait > 0) setTimeout(pump, wait);
    else setImmediate(pump);
  }

  function push(p: Pending): void {
    queue.push(p);
    spacer.arrived();
    schedule();
  }

  return {
    push: (tombstone: ImageTombstone, holders: ReadonlySet<string>) => push({ tombstone, holders, attempts: 0 }),
    /**
     * Resolves once nothing is queued or in flight (a tombstone waiting to be retried is not
     * waited for), or after `timeoutMs`: a stop does not hang on a datanode that stopped answering.
     */
    flush(timeoutMs = FLUSH_TIMEOUT_MS): Promise<void> {
      if (!running && !scheduled && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, timeoutMs).unref();
      });
    },
  };
}
