// The whole-image hashes of open uploads, fed as fragments arrive, under one shared window budget.
// With several coordinators an upload's fragments may arrive at any of them: a coordinator's
// running hash covers only what it was fed, so it is used only if every fragment it was fed is
// still the one in the index (completeUpload re-reads the rest from the datanodes). Kept by the
// upload's image key, never reused (an image id is: see NewFragment).
import type { CoordinatorConfig } from '../config.ts';
import type { Bytes } from '../bytes.ts';
import { createRunningImageHash, knownImageHash, type RunningImageHash } from '../image-hash.ts';
import { createWindowBudget, WINDOW_BUDGET_BYTES } from '../memory-budget.ts';

interface Running {
  hash: RunningImageHash;
  /** The digest of each fragment fed here, by index (the last one fed for an index). */
  fed: Map<number, string>;
  fedAt: number;
}

/** Every so many offers, hashes not fed for an upload's lifetime are dropped. */
const SWEEP_EVERY_OFFERS = 256;

export class RunningHashes {
  private readonly running = new Map<string, Running>();
  // Uploads that never send fragment 0 would otherwise each pin a full window until they expire.
  private readonly windows = createWindowBudget(WINDOW_BUDGET_BYTES);
  private offers = 0;

  constructor(
    private readonly config: CoordinatorConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** Feeds fragment `index` (hashing to `digest`) of an upload with `fragmentCount` fragments. */
  offer(imageKey: string, fragmentCount: number, index: number, data: Bytes, digest: string): void {
    if ((this.offers = (this.offers + 1) % SWEEP_EVERY_OFFERS) === 0) this.sweep();
    let entry = this.running.get(imageKey);
    if (!entry) {
      const hash = fragmentCount === 1 ? knownImageHash(digest) : createRunningImageHash(this.config.fragmentSize * 8, this.windows);
      this.running.set(imageKey, (entry = { hash, fed: new Map(), fedAt: 0 }));
    } else if (fragmentCount === 1) {
      entry.hash = knownImageHash(digest);
    }
    entry.fed.set(index, digest);
    entry.fedAt = this.now();
    if (fragmentCount > 1) entry.hash.offer(index, data);
  }

  /**
   * Takes an upload's hash out (a concurrent completion of the same upload must not push the
   * same fragments into it too: it starts its own from 0); a fresh one when none is usable, or
   * when a fragment it was fed has been replaced since (through another coordinator).
   * `current`: the upload's fragments in the index, in order.
   */
  take(imageKey: string, current: readonly { sha256: string }[]): RunningImageHash {
    const entry = this.running.get(imageKey);
    this.running.delete(imageKey);
    if (!entry?.hash.usable) return createRunningImageHash(0);
    for (const [index, digest] of entry.fed) {
      if (current[index]?.sha256 !== digest) {
        entry.hash.digest(); // gives its window back to the budget
        return createRunningImageHash(0);
      }
    }
    return entry.hash;
  }

  /** Forgets an upload's hash, giving its window back to the budget. */
  drop(imageKey: string): void {
    this.running.get(imageKey)?.hash.digest();
    this.running.delete(imageKey);
  }

  /** Forgets an upload's hash once the image is complete (nothing left to give back). */
  forget(imageKey: string): void {
    this.running.delete(imageKey);
  }

  /** Hashes not fed for an upload's lifetime: the upload ended elsewhere (or expired). */
  private sweep(): void {
    const before = this.now() - this.config.uploadTtlSec * 1000;
    for (const [imageKey, entry] of this.running) if (entry.fedAt < before) this.drop(imageKey);
  }
}
