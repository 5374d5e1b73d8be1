// Date.now of this test process (an in-process cluster's coordinator and datanodes included)
// under the test's hand: it follows the wall clock, except while held, when it stands still
// until the test moves it on. A test whose steps must land within a deadline (an upload's TTL)
// holds it over those steps, so a slow machine cannot make them late. Timers stay real.
import { vi } from 'vitest';

export interface TestClock {
  /** Stops the clock where it is. */
  hold(): void;
  /** Moves it on by `ms` (held or not). */
  advance(ms: number): void;
  /** Lets it run again with the wall clock, from where it stood (no jump). */
  release(): void;
  /** Date.now as it was. */
  restore(): void;
}

/** Install before whatever captures Date.now (startCluster), restore after. */
export function testClock(): TestClock {
  const wall = Date.now.bind(Date);
  let offset = 0;
  let heldAt: number | undefined;
  const spy = vi.spyOn(Date, 'now').mockImplementation(() => heldAt ?? wall() + offset);
  return {
    hold: () => void (heldAt ??= wall() + offset),
    advance(ms) {
      if (heldAt === undefined) offset += ms;
      else heldAt += ms;
    },
    release() {
      if (heldAt === undefined) return;
      offset = heldAt - wall();
      heldAt = undefined;
    },
    restore: () => spy.mockRestore(),
  };
}
