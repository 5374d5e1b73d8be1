// Structured logs (pino) on stderr, so stdout stays free for the one machine-readable line a
// process prints when it is ready.
import pino, { type Logger } from 'pino';

/** Info and debug lines wait until this many bytes are waiting, */
export const LOG_BATCH_BYTES = 4096;
/** or until this long after the first of them. */
export const LOG_BATCH_MS = 20;
const WARN = 40;

/**
 * A line per request ("image stored", "image deleted") written one write each cost the
 * coordinator a thread-pool round trip per line, and `npm start`'s reader a wake-up per line:
 * about a fifth of the CPU of a sequential delete. Info lines are gathered and written together,
 * at most LOG_BATCH_MS late; a warning or an error is written at once, with what waited before
 * it (in order). Pino writes what is left when the process exits; `flushLog` before a process
 * says it is ready. A SIGKILL (or a power failure) loses at most the last LOG_BATCH_MS of info
 * lines, never a warning or an error. Writes stay off the main thread, as before: a reader that
 * stalls (a paused terminal) never blocks the coordinator.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info', fd = 2): Logger {
  const destination = pino.destination({ dest: fd, minLength: LOG_BATCH_BYTES, sync: false });
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    destination.flush();
  };
  return pino(
    {
      name,
      level,
      hooks: {
        logMethod(args, method, lineLevel) {
          method.apply(this, args);
          if (lineLevel >= WARN) flush();
          else timer ??= setTimeout(flush, LOG_BATCH_MS).unref();
        },
      },
    },
    destination,
  );
}

/** Resolves once every line logged so far is written (before a process announces that it is ready). */
export function flushLog(log: Logger): Promise<void> {
  // The callback gets the error of an fsync the destination may not support (a pipe): the lines are written either way.
  return new Promise((resolve) => log.flush(() => resolve()));
}
