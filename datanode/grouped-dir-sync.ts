// Directory fsyncs shared (group commit): one that starts after a rename makes it durable, so
// callers arriving while one runs all wait for the next, single one instead of one each.
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

export interface GroupedDirSync {
  /** Resolves once `dir`'s entries as of the call are on disk; rejects after close(). */
  sync(): Promise<void>;
  /** Closes the directory's handle (after the sync under way, if any); later syncs reject. */
  close(): Promise<void>;
}

export interface GroupedDirSyncOptions {
  /** For tests. */
  openDir?: (dir: string) => Promise<FileHandle>;
  /** Told when the handle no longer is the directory at `dir` (removed, recreated, remounted). */
  onReplaced?: (dir: string) => void;
}

export class DirSyncClosedError extends Error {
  constructor(dir: string) {
    super(`directory sync of ${dir} is closed`);
    this.name = 'DirSyncClosedError';
  }
}

/**
 * The directory is opened once and kept open: every group is then one fsync, not an open, an
 * fsync and a close (three thread-pool trips and system calls, for each group of PUTs).
 * Renames go by path, so before each group's fsync the handle is checked against the path
 * (an fstat and a stat per group, not per PUT): a handle on a directory that was removed and
 * recreated, or remounted, would fsync the old inode and leave the new entries unsynced.
 */
export function groupedDirSync(dir: string, { openDir = (d) => open(d, 'r'), onReplaced }: GroupedDirSyncOptions = {}): GroupedDirSync {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let handle: Promise<FileHandle> | undefined;
  let closed = false;

  const drop = async (dropped: Promise<FileHandle>) => {
    if (handle === dropped) handle = undefined;
    await (await dropped.catch(() => undefined))?.close().catch(() => undefined);
  };
  const current = async (): Promise<FileHandle> => {
    const held = handle;
    if (held) {
      const [heldStat, pathStat] = await Promise.all([
        held.then((h) => h.stat({ bigint: true })),
        // A missing directory rejects here: the renames into it failed too.
        stat(dir, { bigint: true }),
      ]);
      if (heldStat.nlink > 0n && heldStat.dev === pathStat.dev && heldStat.ino === pathStat.ino) return held;
      onReplaced?.(dir);
      await drop(held);
    }
    const opening = (handle ??= openDir(dir));
    // A failed open is not kept: the next group tries again.
    opening.catch(() => {
      if (handle === opening) handle = undefined;
    });
    return opening;
  };
  const fsyncDir = async () => {
    const opening = current();
    try {
      await (await opening).sync();
    } catch (err) {
      // Whatever failed (fstat, stat, fsync), the next group starts from a fresh open.
      if (handle) await drop(handle);
      throw err;
    }
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
      // A late caller after close would reopen the directory and leak the descriptor.
      if (closed) return Promise.reject(new DirSyncClosedError(dir));
      if (queued) return queued;
      if (!running) return start();
      queued = running.then(start, start);
      return queued;
    },
    async close() {
      closed = true;
      await Promise.allSettled([running, queued]);
      const closing = handle;
      handle = undefined;
      await (await closing?.catch(() => undefined))?.close();
    },
  };
}
