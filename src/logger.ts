// Structured logs (pino) on stderr, so stdout stays free for the one machine-readable line a
// process prints when it is ready.
import pino, { type Logger } from 'pino';

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level }, pino.destination(2));
}
