// The highest fencing token this datanode has seen from a coordinator's background work, kept in
// <dataDir>/fence. Several coordinators may share one database, and only the holder of the
// background lease may repair, move or delete replicas; its requests carry the lease's token
// (signed). A coordinator that was paused or cut off and wakes up still believing it leads sends
// an older token: once a newer leader has spoken to this datanode, such writes and deletes are
// refused, so it cannot delete what the new leader placed. Persisted, so a restart forgets nothing.
import fs from 'node:fs/promises';
import path from 'node:path';
import { FENCE_PATTERN, compareFence } from '../src/shared/fence.ts';

export const FENCE_FILE = 'fence';

export async function loadFence(dataDir: string): Promise<string> {
  try {
    const token = (await fs.readFile(path.join(dataDir, FENCE_FILE), 'utf8')).trim();
    if (!FENCE_PATTERN.test(token)) throw new Error(`${FENCE_FILE} in the data dir holds no fencing token`);
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '0';
    throw err;
  }
}

export class FenceKeeper {
  /** Raises are written one at a time, each durably (temp file, fsync, rename) before it is relied on. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private highest: string,
  ) {}

  get current(): string {
    return this.highest;
  }

  /**
   * 'stale' when `token` is lower than one already seen; otherwise remembers it (durably, when it
   * is new) and answers 'ok' once it is written.
   */
  async admit(token: string): Promise<'ok' | 'stale'> {
    if (compareFence(token, this.highest) < 0) return 'stale';
    if (compareFence(token, this.highest) === 0) return 'ok';
    const raise = this.writing.then(async () => {
      if (compareFence(token, this.highest) <= 0) return;
      const file = path.join(this.dataDir, FENCE_FILE);
      const tmp = `${file}.${process.pid}.tmp`;
      await fs.writeFile(tmp, token + '\n', { flush: true, mode: 0o600 });
      await fs.rename(tmp, file);
      this.highest = token;
    });
    this.writing = raise.catch(() => undefined);
    await raise;
    return compareFence(token, this.highest) < 0 ? 'stale' : 'ok';
  }
}
