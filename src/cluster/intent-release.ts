// Releasing write intents so that a release that fails is not lost. The reconciler takes a datanode
// file that has a write intent for a write in flight, so an intent left behind (this coordinator
// was cut from its database when it released it) would keep an uncounted copy until the restart.
// Retrying in memory until the database takes it is the simplest sound answer: while this process
// lives it keeps trying (backoff capped, so a long cut is still caught soon after it ends), and if
// it dies first, its intents are released at its restart (releaseAllWriteIntents) or by another
// coordinator's sweep of departed ones. No new column or pass is needed.
//
// A release runs unfenced even inside a background pass (withoutFence): a pass whose lease moved
// on (its recording refused, FENCED) must still release what it wrote, or its fenced release would
// be refused too, retried forever with the same stale token, and the copies kept until the
// restart. Whatever leader holds the lease, a release queues only unrecorded-write deletions, never
// one of a copy the index records (checked in the same statement), as an upload's release does.
// It drops this coordinator's intents only: a newer leader writing the same copy has an intent of
// its own (a row per coordinator on PostgreSQL), which stays, and while it does no deletion of that
// file is queued. (A release whose statement runs while the other's add is not yet committed does
// not see it: that window of milliseconds can still queue the deletion, as any release could before.)
import type { Logger } from 'pino';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import { withoutFence } from '../shared/fence.ts';

const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 30_000;

/**
 * Releases the intents now; when that fails, logs it and keeps retrying in the background (never
 * rejects, so callers on an error path keep their own error). Resolves after the first attempt.
 */
export async function releaseIntents(
  deps: { catalog: Catalog; log: Logger; now: () => number },
  fragmentId: string,
  datanodeIds: string[],
  retryMs = FIRST_RETRY_MS,
): Promise<void> {
  if (datanodeIds.length === 0) return;
  // The retries' timers are set in here, so they run unfenced as well.
  await withoutFence(async () => {
    try {
      await deps.catalog.releaseWriteIntents(fragmentId, datanodeIds, deps.now());
    } catch (err) {
      deps.log.warn({ fragment: fragmentId, datanodes: datanodeIds, err, retryInMs: retryMs }, 'write intents not released; retrying');
      // unref: a pending retry does not keep a stopping process alive (its restart releases them).
      setTimeout(() => void releaseIntents(deps, fragmentId, datanodeIds, Math.min(retryMs * 2, MAX_RETRY_MS)), retryMs).unref();
    }
  });
}

/**
 * Records copies just written with `record`; when that does not count them (it throws, or answers
 * false: the fragment was deleted meanwhile), their intents are released as above, so the copies
 * are the deleter's at once instead of covered until the restart, and `released` is called. A
 * release never deletes a copy the index records as a replica, so a record that committed although
 * it threw (its answer lost), or an in-place rewrite of a recorded copy, loses nothing. The
 * record's outcome or error is the caller's.
 */
export async function recordOrRelease<T>(
  deps: { catalog: Catalog; log: Logger; now: () => number },
  fragmentId: string,
  written: string[],
  record: () => Promise<T>,
  released?: () => void,
): Promise<T> {
  let counted = false;
  try {
    const outcome = await record();
    counted = Boolean(outcome);
    return outcome;
  } finally {
    if (!counted) {
      await releaseIntents(deps, fragmentId, written);
      released?.();
    }
  }
}
