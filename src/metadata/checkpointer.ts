// WAL checkpoints of the SQLite index on a thread of their own. SQLite's automatic checkpoint
// runs inside the commit that crosses its threshold (1000 pages, a few dozen deletes or uploads),
// on the coordinator's one thread: it writes the pages back into the database file and syncs the
// WAL and the file (synchronous=NORMAL syncs there and nowhere else), stalling every request for
// milliseconds. Here a worker thread with its own connection runs PASSIVE checkpoints every
// `everyMs` (a second), with the same syncs, off the request path; the coordinator's connection
// keeps an automatic checkpoint only as a bound on the WAL (LARGE_WAL_PAGES) should the worker
// fall behind or fail. What a power failure may cost (synchronous=NORMAL, database.ts) is what
// came after the last checkpoint: before, up to 1000 pages, and with no bound in time on a quiet
// index; now at most about a second of commits (and LARGE_WAL_PAGES).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Db } from './database.ts';

/** The coordinator's own connection checkpoints only once the WAL holds this many pages (SQLite's default: 1000). */
export const LARGE_WAL_PAGES = 10_000;
/**
 * A page written many times between two passes is copied into the database file once: a longer
 * interval spares the worker's CPU and syncs during a burst of writes (the coordinator's commits
 * append to the WAL all the same), and the WAL stays bounded by LARGE_WAL_PAGES.
 */
const EVERY_MS = 1000;

/** What one PRAGMA wal_checkpoint answered: pages in the WAL, and how many of them are in the database file. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

// Plain CommonJS, evaluated: it runs the same under tsx, vitest and a bundle, needing no file of its own.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const pass = () => {
  try {
    return { result: checkpoint.get() };
  } catch (err) {
    return { error: String((err && err.message) || err) };
  }
};
let failed = false;
const timer = setInterval(() => {
  const answer = pass();
  if (answer.error && !failed) parentPort.postMessage(answer);
  failed = answer.error !== undefined;
}, workerData.everyMs);
parentPort.on('message', (message) => {
  if (message.kind === 'now') parentPort.postMessage({ id: message.id, ...pass() });
  if (message.kind === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort.close();
  }
});
`;

export interface Checkpointer {
  /** Runs a checkpoint on the worker now (tests). */
  now(): Promise<CheckpointResult>;
  /** Ends the worker and its connection; the coordinator's connection checkpoints as SQLite does by default again. */
  stop(): Promise<void>;
  /** The worker thread (tests end it to play an unexpected exit). */
  readonly thread: Worker;
}

/** Starts checkpointing `db`'s file (a WAL database on disk) from a worker thread. */
export function startCheckpointer(db: Db, { log, everyMs = EVERY_MS }: { log?: Logger; everyMs?: number } = {}): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: db.name, everyMs } });
  worker.unref(); // never what keeps a process alive
  db.pragma(`wal_autocheckpoint = ${LARGE_WAL_PAGES}`);
  const waiting = new Map<number, { resolve: (r: CheckpointResult) => void; reject: (err: Error) => void }>();
  let nextId = 0;
  let ended: Error | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const fail = (err: Error) => {
    ended ??= err;
    // The bound on the WAL is SQLite's own again: no checkpoint is left undone.
    if (db.open) db.pragma('wal_autocheckpoint = 1000');
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('message', (m: { id?: number; result?: CheckpointResult; error?: string }) => {
    if (m.id === undefined) return void log?.warn({ err: m.error }, 'background WAL checkpoint failed; the commits checkpoint meanwhile');
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error !== undefined) w?.reject(new Error(m.error));
    else w?.resolve(m.result!);
  });
  worker.on('error', (err) => {
    log?.warn({ err }, 'the WAL checkpoint thread failed; the commits checkpoint again');
    fail(err);
  });
  let stopping = false;
  worker.on('exit', (code) => {
    // Only stop() ends the thread: any other exit, clean or not, leaves the WAL to the commits.
    if (!stopping && !ended) log?.warn({ code }, 'the WAL checkpoint thread exited; the commits checkpoint again');
    fail(new Error('the WAL checkpoint thread ended'));
  });
  return {
    now() {
      if (ended) return Promise.reject(ended);
      const id = nextId++;
      return new Promise<CheckpointResult>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ kind: 'now', id });
      });
    },
    async stop() {
      stopping = true;
      // Held from here to its exit: awaiting an unref'd thread keeps nothing alive, so a process
      // with no other handle left (a script that closes the index last) ended mid-close, the
      // index's own connection never closed. (A coordinator has other handles while it stops.)
      worker.ref();
      if (!ended) worker.postMessage({ kind: 'stop' });
      await exited;
    },
    thread: worker,
  };
}
