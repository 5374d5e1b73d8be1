// Background rounds that a burst of API calls feeds (replica file deletions after deletes, with
// BURST_ROUNDS; tombstones with TOMBSTONE_ROUNDS, which never wait for a burst to pause). The
// first round after a quiet spell starts at once, so a lone call's work goes out without delay.
// During a burst a round waits while calls keep arriving: it starts once they pause (`quietMs`), once `maxBatch` calls' work is waiting, or at the latest `maxDelayMs` after
// the previous round started, and never sooner than `spacingMs` after it. So a sequential run of
// deletes costs a few large rounds (requests, journal syncs, file deletions on the datanodes)
// instead of one every `spacingMs`, competing for the cores with the calls themselves.

export interface RoundSpacing {
  /** Rounds start at least this far apart. */
  spacingMs: number;
  /** During a burst, a round starts once no call arrived for this long. */
  quietMs: number;
  /** ...or once this much time passed since the previous round started (the longest any work waits). */
  maxDelayMs: number;
  /** ...or once this many calls arrived since the previous round started (a round's worth). */
  maxBatch: number;
}

export const BURST_ROUNDS: RoundSpacing = { spacingMs: 25, quietMs: 25, maxDelayMs: 500, maxBatch: 128 };

/**
 * Tombstone rounds: spaced, never held back for a burst. Under synchronous=NORMAL an acknowledged
 * delete survives a power failure once the index's WAL is synced (the checkpointer, about every
 * second) or once its tombstone is in a datanode's journal (synced when the write returns): the
 * tombstone is what bounds the window of a lost delete, so it goes out within ~25 ms (plus the
 * round in flight), not up to BURST_ROUNDS.maxDelayMs later. Replica FILE deletions keep the
 * burst batching: they wait for the deletion to be durable anyway (replica-deletions.ts).
 */
export const TOMBSTONE_ROUNDS: RoundSpacing = { spacingMs: 25, quietMs: 25, maxDelayMs: 25, maxBatch: 128 };

/** `clock`: a monotonic one in milliseconds (tests pass their own). */
export function roundSpacer(spacing: Partial<RoundSpacing> = {}, clock: () => number = () => performance.now()) {
  const { spacingMs, quietMs, maxDelayMs, maxBatch } = { ...BURST_ROUNDS, ...spacing };
  let lastStart = Number.NEGATIVE_INFINITY;
  let lastArrival = Number.NEGATIVE_INFINITY;
  let arrivals = 0;
  return {
    /** `n` calls brought work for the next round. */
    arrived(n = 1): void {
      arrivals += n;
      lastArrival = clock();
    },
    /** Milliseconds until the next round may start (0: now); ask again after waiting, calls may have arrived meanwhile. */
    wait(): number {
      const now = clock();
      const spaced = Math.max(0, lastStart + spacingMs - now);
      // After a quiet spell, with nothing new, or with a round's worth waiting: only the spacing.
      if (now - lastStart >= maxDelayMs || arrivals === 0 || arrivals >= maxBatch) return spaced;
      return Math.max(spaced, Math.min(lastArrival + quietMs, lastStart + maxDelayMs) - now);
    },
    /** A round starts now: it takes the work of every call arrived so far. */
    started(): void {
      lastStart = clock();
      arrivals = 0;
    },
  };
}
