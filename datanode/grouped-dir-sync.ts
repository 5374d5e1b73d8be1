// Directory fsyncs shared (group commit): one that starts after a rename makes it durable, so
// callers arriving while one runs all wait for the next, single one instead of one each.
import { open } from 'node:fs/promises';

/** A function that resolves once `dir`'s entries as of the call are on disk. */
export function groupedDirSync(dir: string): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = () => {
    queued = undefined;
    const run = fsyncDir(dir);
    running = run;
    const clear = () => {
      if (running === run) running = undefined;
    };
    run.then(clear, clear);
    return run;
  };
  return () => {
    if (queued) return queued;
    if (!running) return start();
    queued = running.then(start, start);
    return queued;
  };
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
