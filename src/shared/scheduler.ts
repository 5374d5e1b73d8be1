// The one way the coordinator and the datanode run work periodically (repair, deletions,
// reconciliation, scrubbing, health sampling, expiry, registration): a loop runs one pass at a
// time, the next `everyMs` after the previous one ended (so a slow pass never piles up), and
// can be kicked, awaited and stopped the same way everywhere. A scheduler groups the loops of
// one process behind one gate: where only one of several processes may do background work (a
// leader), that is decided in the gate and nowhere else.
import type { Logger } from 'pino';
import { withFence } from './fence.ts';

export interface LoopOptions {
  /** From the end of one pass to the start of the next; a function when it depends on how the pass went. */
  everyMs: number | (() => number);
  /** From start() to the first pass (default: the first pass runs at once). */
  firstAfterMs?: number;
  /** The wait keeps no process alive (the datanode's loops: they must not hold a closing process open). */
  unref?: boolean;
  /**
   * stop() does not wait for the pass under way, which must then drop its work itself (it checks
   * `state`): for passes that wait on other machines, such as health samples, so that a hung
   * datanode never holds up a shutdown.
   */
  abandonOnStop?: boolean;
}

export interface Loop {
  /** Runs passes from now on: the first after `firstAfterMs`, then every `everyMs` after the last one ended. */
  start(): void;
  /** No pass starts any more; resolves once the one under way has ended (at once with `abandonOnStop`). */
  stop(): Promise<void>;
  /** Runs a pass now, or right after the one under way; resolves when a pass begun after this call has ended. */
  kick(): Promise<void>;
  /** Resolves once no pass runs (passes kicked meanwhile included). */
  idle(): Promise<void>;
  /**
   * True before start(), after stop() and while the gate is closed: long passes check it between
   * steps, so stop() does not wait for them and a process that loses the gate stops mid-pass.
   */
  readonly stopped: boolean;
  /** 'stopped' only once stop() was called (work outside the passes checks that, not `stopped`). */
  readonly state: 'new' | 'started' | 'stopped';
  /** Passes run so far (a pass that failed counts; one the gate skipped does not). */
  readonly passes: number;
}

export interface Scheduler {
  /** A loop running `pass`; a failed pass is logged and the loop goes on. */
  loop(name: string, pass: () => Promise<void>, options: LoopOptions): Loop;
  /** Stops every loop of this scheduler; resolves once none runs a pass. */
  stop(): Promise<void>;
}

interface LoopContext {
  log?: Logger;
  gate: () => boolean;
  fence: () => string | undefined;
}

export function createScheduler({
  log,
  gate = () => true,
  fence = () => undefined,
}: {
  log?: Logger;
  /** Whether background passes may run in this process now (checked before every pass). */
  gate?: () => boolean;
  /**
   * The fencing token of the authority the gate grants (shared/fence.ts), taken when a pass
   * starts: the whole pass runs under it, so what it writes after its authority is gone is refused.
   */
  fence?: () => string | undefined;
} = {}): Scheduler {
  const loops: Loop[] = [];
  return {
    loop(name, pass, options) {
      const loop = createLoop(name, pass, options, { log, gate, fence });
      loops.push(loop);
      return loop;
    },
    async stop() {
      await Promise.all(loops.map((l) => l.stop()));
    },
  };
}

function createLoop(name: string, pass: () => Promise<void>, options: LoopOptions, { log, gate, fence }: LoopContext): Loop {
  let state: Loop['state'] = 'new';
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** Settles the callers who kicked while a pass ran, once the pass after it has ended. */
  let queued: { promise: Promise<void>; resolve: () => void } | undefined;
  let passes = 0;

  const nextDelay = () => (typeof options.everyMs === 'function' ? options.everyMs() : options.everyMs);

  function arm(delayMs: number): void {
    clearTimeout(timer);
    timer = undefined;
    if (state !== 'started') return;
    timer = setTimeout(() => {
      timer = undefined;
      void kick();
    }, delayMs);
    if (options.unref) timer.unref();
  }

  async function runOnce(): Promise<void> {
    if (!gate()) return;
    passes += 1;
    try {
      await withFence(fence(), pass);
    } catch (err) {
      log?.error({ err }, `${name} pass failed`);
    }
  }

  function kick(): Promise<void> {
    if (running) {
      if (!queued) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        queued = { promise, resolve };
      }
      return queued.promise;
    }
    clearTimeout(timer);
    timer = undefined;
    running = runOnce().finally(() => {
      running = undefined;
      const waiting = queued;
      queued = undefined;
      if (!waiting) return arm(nextDelay());
      if (state === 'stopped') return waiting.resolve();
      void kick().then(waiting.resolve);
    });
    return running;
  }

  return {
    start() {
      state = 'started';
      if (options.firstAfterMs === undefined) void kick();
      else arm(options.firstAfterMs);
    },
    async stop() {
      state = 'stopped';
      clearTimeout(timer);
      timer = undefined;
      if (!options.abandonOnStop) while (running) await running;
    },
    kick,
    async idle() {
      while (running) await running;
    },
    get stopped() {
      return state !== 'started' || !gate();
    },
    get state() {
      return state;
    },
    get passes() {
      return passes;
    },
  };
}
