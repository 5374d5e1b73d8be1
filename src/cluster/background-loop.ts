// A background job run in passes: at most one pass at a time, one more right after it when
// kicked meanwhile, and one every `pollMs` while started. The repairer and the deletion queue
// are such jobs.
import type { Logger } from 'pino';

export interface BackgroundLoop {
  /** Runs a pass now (or right after the one under way); resolves when that pass ends. */
  kick(): Promise<void>;
  start(): void;
  /** Resolves once no pass is running (tests and shutdown). */
  idle(): Promise<void>;
  stop(): Promise<void>;
  /** For passes to check between steps, so stop() does not wait for a long pass. */
  readonly stopped: boolean;
}

export function createBackgroundLoop(name: string, pass: () => Promise<void>, { pollMs, log }: { pollMs: number; log: Logger }): BackgroundLoop {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;

  function kick(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = pass()
      .catch((err) => log.error({ err }, `${name} pass failed`))
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          void kick();
        }
      });
    return running;
  }

  return {
    kick,
    start() {
      stopped = false;
      const tick = () => {
        void kick().finally(() => {
          if (!stopped) timer = setTimeout(tick, pollMs);
        });
      };
      tick();
    },
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
    get stopped() {
      return stopped;
    },
  };
}
