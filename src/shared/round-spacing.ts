// Background rounds that a burst of API calls feeds (tombstones and replica file deletions after
// deletes): the first round after a quiet spell starts at once, so a lone call's work goes out
// without delay; during a burst a round starts at most every `spacingMs`, so each carries many
// calls' work. Without it every delete of a sequential run had rounds of its own: requests,
// journal syncs and process wake-ups on the datanodes, competing with the calls themselves.

/** Rounds a burst of deletes feeds start at most this often (a tombstone or file waits this long at worst). */
export const BURST_ROUND_SPACING_MS = 25;

/** `clock`: a monotonic one in milliseconds (tests pass their own). */
export function roundSpacer(spacingMs = BURST_ROUND_SPACING_MS, clock: () => number = () => performance.now()) {
  let lastStart = Number.NEGATIVE_INFINITY;
  return {
    /** Milliseconds until the next round may start (0: now). */
    wait: () => Math.max(0, lastStart + spacingMs - clock()),
    /** A round starts now. */
    started: () => void (lastStart = clock()),
  };
}
