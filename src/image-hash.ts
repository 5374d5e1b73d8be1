// The whole-image SHA-256 of an upload, computed while fragments arrive: fragments are hashed
// in index order as soon as the order allows, holding a bounded window of early ones. When the
// order defeats the window (or the coordinator restarted), completeUpload re-reads the rest.
// All windows together stay within a shared budget: the least recently fed one is evicted.
import { createHash, type Hash } from 'node:crypto';
import { byteLength, chunksOf, type Bytes } from './bytes.ts';
import type { WindowBudget } from './memory-budget.ts';

export interface RunningImageHash {
  /** Index of the next fragment the hash needs. */
  readonly next: number;
  /** False once a fragment it already hashed was replaced, or the window overflowed. */
  readonly usable: boolean;
  offer(index: number, data: Bytes): void;
  /** Hashes `data` as fragment `next` (catch-up from re-read fragments). */
  push(data: Bytes): void;
  digest(): string;
}

export function createRunningImageHash(maxBufferedBytes: number, budget?: WindowBudget): RunningImageHash {
  let hash: Hash = createHash('sha256');
  let next = 0;
  let usable = true;
  let bufferedBytes = 0;
  const early = new Map<number, Bytes>();
  const update = (data: Bytes) => {
    for (const chunk of chunksOf(data)) hash.update(chunk);
  };

  const drain = () => {
    for (let data = early.get(next); data !== undefined; data = early.get(next)) {
      early.delete(next);
      bufferedBytes -= byteLength(data);
      update(data);
      next += 1;
    }
  };
  const giveUp = () => {
    usable = false;
    early.clear();
    bufferedBytes = 0;
    budget?.release(holder);
  };
  const holder = { evict: giveUp };

  return {
    get next() {
      return next;
    },
    get usable() {
      return usable;
    },
    offer(index, data) {
      if (!usable) return;
      if (index < next) return giveUp(); // a hashed fragment was replaced
      const old = early.get(index);
      if (old) bufferedBytes -= byteLength(old);
      early.set(index, data);
      bufferedBytes += byteLength(data);
      drain();
      if (bufferedBytes > maxBufferedBytes) giveUp();
      else budget?.charge(holder, bufferedBytes);
    },
    push(data) {
      update(data);
      next += 1;
      drain();
      if (usable) budget?.charge(holder, bufferedBytes);
    },
    digest() {
      const hex = hash.digest('hex');
      hash = createHash('sha256');
      usable = false;
      budget?.release(holder);
      return hex;
    },
  };
}

/**
 * The whole-image hash of a one-fragment image: that fragment's own hash, already known (computed
 * once, or given by the client and verified by every datanode), so its bytes are not hashed again.
 */
export function knownImageHash(sha256: string): RunningImageHash {
  let usable = true;
  return {
    next: 1,
    get usable() {
      return usable;
    },
    offer() {},
    push() {},
    digest() {
      usable = false;
      return sha256;
    },
  };
}
