// Tombstones of deletions already durable in the index, pushed to datanodes in the background,
// oldest first, a few at a time, so that deleteImage answers without waiting for a datanode.
// One that no datanode took is tried again with backoff.
import type { Logger } from 'pino';
import type { ImageTombstone } from '../shared/datanode-api.ts';
import type { Registry } from './registry.ts';

const CONCURRENCY = 4;
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

export function createTombstoneQueue({
  log,
  targets,
  put,
  delivered,
}: {
  log: Logger;
  targets: (holders: ReadonlySet<string>) => string[];
  put: (datanodeId: string, tombstone: ImageTombstone) => Promise<unknown>;
  /** The tombstone is in at least one datanode's records: every later reading of them holds it. */
  delivered: (imageKey: string) => void;
}) {
  const queue: Pending[] = [];
  let running = 0;
  const waiters: (() => void)[] = [];

  async function send(p: Pending): Promise<void> {
    const ids = targets(p.holders);
    const results = await Promise.allSettled(ids.map((id) => put(id, p.tombstone)));
    if (results.some((r) => r.status === 'fulfilled')) return delivered(p.tombstone.image);
    p.attempts += 1;
    if (p.attempts >= MAX_ATTEMPTS) {
      // The queued deletions of its files still tombstone it on every datanode holding them.
      log.warn({ image: p.tombstone.image, attempts: p.attempts }, 'no datanode took the tombstone; left to the file deletions');
      return;
    }
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** p.attempts);
    setTimeout(() => push(p), backoff).unref();
  }

  function pump(): void {
    while (running < CONCURRENCY && queue.length > 0) {
      running += 1;
      void send(queue.shift()!).finally(() => {
        running -= 1;
        pump();
        if (running === 0 && queue.length === 0) for (const resolve of waiters.splice(0)) resolve();
      });
    }
  }

  function push(p: Pending): void {
    queue.push(p);
    pump();
  }

  return {
    push: (tombstone: ImageTombstone, holders: ReadonlySet<string>) => push({ tombstone, holders, attempts: 0 }),
    /**
     * Resolves once nothing is queued or in flight (a tombstone waiting to be retried is not
     * waited for), or after `timeoutMs`: a stop does not hang on a datanode that stopped answering.
     */
    flush(timeoutMs = FLUSH_TIMEOUT_MS): Promise<void> {
      if (running === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, timeoutMs).unref();
      });
    },
  };
}
