// The tests' one way to wait for a condition that no event announces: poll it. Where a value is
// compared, vitest's `expect.poll(...)` reads better; these serve a check with a name, and a
// wait that must give up early when a process it watches has died.

export interface PollOptions {
  /** Default 5 s. */
  timeoutMs?: number;
  /** Default 20 ms. */
  intervalMs?: number;
  /** Gives up at once when this settles (e.g. a child's `exited`): the answer will never come. */
  unless?: Promise<unknown>;
}

const describe = (what: string | (() => string)) => (typeof what === 'string' ? what : what());

/** Polls `probe` until it answers something truthy and returns it; throws naming `what` otherwise. */
export async function untilValue<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string | (() => string),
  opts: PollOptions = {},
): Promise<T> {
  const { timeoutMs = 5_000, intervalMs = 20 } = opts;
  let gone = false;
  void opts.unless?.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (gone) throw new Error(`gave up waiting for ${describe(what)}: the process exited`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${describe(what)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Polls `check` until it returns true (or throws at the deadline). */
export async function until(check: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 5_000): Promise<void> {
  await untilValue(check, what, { timeoutMs });
}
