// A byte-rate limit for background work (repair, scrub): callers report what they moved and
// wait as long as needed to stay under the rate, so clients keep the bandwidth.
export function createThrottle(bytesPerSecond: number, now = () => performance.now()) {
  let budgetStart = now();
  let spent = 0;
  return {
    async consume(bytes: number, signal?: { stopped: boolean }): Promise<void> {
      if (bytesPerSecond <= 0) return; // 0: unthrottled
      spent += bytes;
      const due = budgetStart + (spent / bytesPerSecond) * 1000;
      const wait = due - now();
      if (wait > 0 && !signal?.stopped) await new Promise((r) => setTimeout(r, Math.min(wait, 5_000)));
      // Forget idle time: a long pause must not buy a burst later.
      if (now() - due > 1000) {
        budgetStart = now();
        spent = 0;
      }
    },
  };
}
export type Throttle = ReturnType<typeof createThrottle>;
