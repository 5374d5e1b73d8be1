// Directory fsyncs shared (group commit): one that starts after a rename makes it durable, so
// callers arriving while one runs all wait for the next, single one instead of one each.
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

export interface GroupedDirSync {
  /** Resolves once `dir`'s entries as of the call are on disk. */
  sync(): Promise<void>;
  /** Closes the directory's handle (after the sync under way, if any); a later sync reopens it. */
  close(): Promise<void>;
}

/**
 * The directory is opened once and kept open: every group is then one fsync, not an open, an
 * fsync and a close (three thread-pool trips and system calls, for each group of PUTs).
 * `openDir` is for tests.
 */
export function groupedDirSync(dir: string, openDir: (dir: string) => Promise<FileHandle> = (d) => open(d, 'r')): GroupedDirSync {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let handle: Promise<FileHandle> | undefined;

  const fsyncDir = async () => {
    const opening = (handle ??= openDir(dir));
    // A failed open is not kept: the next group tries again.
    opening.catch(() => {
      if (handle === opening) handle = undefined;
    });
    await (await opening).sync();
  };
  const start = () => {
    queued = undefined;
    const run = fsyncDir();
    running = run;
    const clear = () => {
      if (running === run) running = undefined;
    };
    run.then(clear, clear);
    return run;
  };
  return {
    sync() {
      if (queued) return queued;
      if (!running) return start();
      queued = running.then(start, start);
      return queued;
    },
    async close() {
      await Promise.allSettled([running, queued]);
      const closing = handle;
      handle = undefined;
      await (await closing?.catch(() => undefined))?.close();
    },
  };
}
