// Structured logs (pino) on stderr, so stdout stays free for the one machine-readable line a
// process prints when it is ready.
import pino, { type Logger } from 'pino';

/** Lines are written once this many bytes are waiting, */
const BUFFER_BYTES = 4096;
/** or this long after the first of them, whichever comes first (and at exit, by pino). */
const FLUSH_MS = 100;

/**
 * A write per line was 5-8% of the coordinator's CPU under a burst of small requests (an
 * "image stored" or "image deleted" line each): lines are gathered and written together, at
 * most FLUSH_MS late. Pino flushes what is left when the process exits (a SIGKILL loses at most
 * that last moment's lines).
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  const destination = pino.destination({ dest: 2, minLength: BUFFER_BYTES, sync: false });
  let timer: NodeJS.Timeout | undefined;
  const flushSoon = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      destination.flush();
    }, FLUSH_MS).unref();
  };
  return pino(
    {
      name,
      level,
      hooks: {
        streamWrite: (line) => {
          flushSoon();
          return line;
        },
      },
    },
    destination,
  );
}
