// Byte budgets shared by every request of the coordinator, so that no number of requests can
// take it past its memory budget: one for the out-of-order fragment windows of running image
// hashes (the least recently fed window is evicted to the re-read path), one for fragment bytes
// that fragmentData holds while it reads and encodes them (callers wait their turn, then give up),
// and one for the bytes request bodies buffer, from their arrival until their request is done with
// them (past it a body is refused).
import { TesseraError } from './errors.ts';

/** Bytes all out-of-order windows together may hold (each one may hold 8 fragments: two full windows of 2 MiB fragments). */
export const WINDOW_BUDGET_BYTES = 32 * 1024 * 1024;
/** Raw fragment bytes fragmentData may hold at once across all requests (base64 and JSON add ~3x). */
export const FRAGMENT_DATA_BUDGET_BYTES = 32 * 1024 * 1024;
/** How long a fragmentData waits for room before it is refused with SERVER_BUSY. */
export const FRAGMENT_DATA_WAIT_MS = 10_000;

/**
 * Bytes all request bodies being read or used may buffer together: 32 fragments of 2 MiB, or one
 * default-sized uploadImage. A lone body always fits whatever its size (see tryCharge), so this
 * need not hold the largest --max-upload-image-size. It is kept well under the coordinator's
 * memory budget because what refused bodies held stays garbage until the next GC (README).
 */
export const MULTIPART_BUDGET_BYTES = 64 * 1024 * 1024;

/**
 * A count of the bytes that request bodies hold while they are read and used. A body is refused rather
 * than made to wait: a body that waits keeps its socket and what it already holds, which is what
 * a stalling client wants.
 */
export function createBodyBudget(limit: number) {
  let used = 0;
  return {
    get used() {
      return used;
    },
    /**
     * Adds `bytes` to a body that holds `held` already; false (nothing added) when that passes the
     * limit while other bodies hold bytes too. A body alone always fits, so a legitimate upload up
     * to its own size limit works whatever the budget.
     */
    tryCharge(held: number, bytes: number): boolean {
      if (used + bytes > limit && used > held) return false;
      used += bytes;
      return true;
    },
    release(bytes: number) {
      used -= bytes;
    },
  };
}

export type BodyBudget = ReturnType<typeof createBodyBudget>;

export interface WindowHolder {
  /** Drops everything the holder buffers; the budget has already forgotten its bytes. */
  evict(): void;
}

/** A budget over holders that can drop what they hold: charging past it evicts the least recently charged. */
export function createWindowBudget(limit: number) {
  const held = new Map<WindowHolder, number>(); // in charge order: the first is the least recent
  let used = 0;
  const release = (holder: WindowHolder) => {
    used -= held.get(holder) ?? 0;
    held.delete(holder);
  };
  return {
    get used() {
      return used;
    },
    /** Sets what `holder` holds now; evicts least recently charged holders (maybe this one) while over the limit. */
    charge(holder: WindowHolder, bytes: number) {
      release(holder);
      if (bytes <= 0) return;
      held.set(holder, bytes);
      used += bytes;
      for (const [victim] of held) {
        if (used <= limit) break;
        release(victim);
        victim.evict();
      }
    },
    release,
  };
}

export type WindowBudget = ReturnType<typeof createWindowBudget>;

/** A byte semaphore: acquire waits in line for room (FIFO) up to `waitMs`, then throws SERVER_BUSY. */
export function createByteSemaphore(limit: number) {
  let used = 0;
  const waiting: { bytes: number; grant: () => void }[] = [];
  const pump = () => {
    while (waiting.length > 0 && (used === 0 || used + waiting[0].bytes <= limit)) {
      const next = waiting.shift()!;
      used += next.bytes;
      next.grant();
    }
  };
  return {
    get used() {
      return used;
    },
    /** Resolves with the release function once `bytes` fit (one holder alone always fits). */
    acquire(bytes: number, waitMs: number): Promise<() => void> {
      return new Promise((resolve, reject) => {
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          used -= bytes;
          pump();
        };
        const entry = {
          bytes,
          grant: () => {
            clearTimeout(timer);
            resolve(release);
          },
        };
        const timer = setTimeout(() => {
          const at = waiting.indexOf(entry);
          if (at >= 0) waiting.splice(at, 1);
          reject(new TesseraError('SERVER_BUSY', `The coordinator is busy serving other fragments; retry later.`));
        }, waitMs);
        waiting.push(entry);
        pump();
      });
    },
  };
}
