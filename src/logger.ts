// Structured logs (pino) on stderr, so stdout stays free for the one machine-readable line a
// process prints when it is ready.
import pino, { type Logger } from 'pino';

/** Info and debug lines wait until this many bytes are waiting, */
export const LOG_BATCH_BYTES = 4096;
/** or until this long after the first of them. */
export const LOG_BATCH_MS = 20;
/** Past this much unwritten (stderr's reader stalled), lines are dropped rather than kept in memory. */
export const LOG_MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024;
const WARN = 40;

/**
 * A line per request ("image stored", "image deleted") written one write each cost the
 * coordinator a thread-pool round trip per line, and `npm start`'s reader a wake-up per line:
 * about a fifth of the CPU of a sequential delete. Info lines are gathered here and handed on
 * together, at most LOG_BATCH_MS late; a warning or an error is handed on at once, with what
 * waited before it (in order). SonicBoom (pino's destination) then writes whatever it holds as
 * soon as its previous write ends (minLength 0: its own batching would keep lines below its
 * minimum until a later one came, a warning included). What is left is written when the process
 * exits; `flushLog` before a process says it is ready. A SIGKILL (or a power failure) loses at
 * most the last LOG_BATCH_MS of info lines, never a warning or an error. Writes stay off the
 * main thread: a reader that stalls (a paused terminal) never blocks the coordinator, and past
 * LOG_MAX_UNWRITTEN_BYTES its lines are dropped, not kept.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info', fd = 2): Logger {
  const out = pino.destination({ dest: fd, sync: false, maxLength: LOG_MAX_UNWRITTEN_BYTES });
  let batch = '';
  let timer: NodeJS.Timeout | undefined;
  const handOn = () => {
    clearTimeout(timer);
    timer = undefined;
    if (batch === '') return;
    out.write(batch);
    batch = '';
  };
  // Registered before pino's own exit hook, which writes what the destination holds.
  process.prependListener('exit', handOn);
  const stream = {
    write(line: string) {
      batch += line;
      if (batch.length >= LOG_BATCH_BYTES) handOn();
      else timer ??= setTimeout(handOn, LOG_BATCH_MS).unref();
    },
    /** Calls back once every line so far is written (SonicBoom's 'drain': it holds nothing more). */
    flush(cb: () => void) {
      handOn();
      if ((out as unknown as { _writing: boolean })._writing) out.once('drain', () => cb());
      else cb();
    },
  };
  return pino(
    {
      name,
      level,
      hooks: {
        logMethod(args, method, lineLevel) {
          method.apply(this, args);
          if (lineLevel >= WARN) handOn();
        },
      },
    },
    stream,
  );
}

/** Resolves once every line logged so far is written (before a process announces that it is ready). */
export function flushLog(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}
