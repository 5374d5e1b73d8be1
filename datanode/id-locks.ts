// Runs async critical sections one at a time per key, different keys in parallel; a key's entry
// is dropped once its queue drains, so the map holds only keys in use.
export class IdLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` once every earlier section of `id` has settled (whether it failed or not). */
  run<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(id, settled);
    void settled.then(() => {
      if (this.tails.get(id) === settled) this.tails.delete(id);
    });
    return run;
  }
}
