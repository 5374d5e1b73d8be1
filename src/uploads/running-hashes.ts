// The whole-image hashes of open uploads, fed as fragments arrive, under one shared window budget.
import type { CoordinatorConfig } from '../config.ts';
import type { Bytes } from '../bytes.ts';
import { createRunningImageHash, knownImageHash, type RunningImageHash } from '../image-hash.ts';
import { createWindowBudget, WINDOW_BUDGET_BYTES } from '../memory-budget.ts';

export class RunningHashes {
  private readonly running = new Map<number, RunningImageHash>();
  // Uploads that never send fragment 0 would otherwise each pin a full window until they expire.
  private readonly windows = createWindowBudget(WINDOW_BUDGET_BYTES);

  constructor(private readonly config: CoordinatorConfig) {}

  /** Feeds fragment `index` (hashing to `digest`) of an upload with `fragmentCount` fragments. */
  offer(imageId: number, fragmentCount: number, index: number, data: Bytes, digest: string): void {
    if (fragmentCount === 1) return void this.running.set(imageId, knownImageHash(digest));
    let hash = this.running.get(imageId);
    if (!hash) this.running.set(imageId, (hash = createRunningImageHash(this.config.fragmentSize * 8, this.windows)));
    hash.offer(index, data);
  }

  /**
   * Takes an upload's hash out (a concurrent completion of the same upload must not push the
   * same fragments into it too: it starts its own from 0); a fresh one when none is usable.
   */
  take(imageId: number): RunningImageHash {
    const hash = this.running.get(imageId);
    this.running.delete(imageId);
    return hash?.usable ? hash : createRunningImageHash(0);
  }

  /** Forgets an upload's hash, giving its window back to the budget. */
  drop(imageId: number): void {
    this.running.get(imageId)?.digest();
    this.running.delete(imageId);
  }

  /** Forgets an upload's hash once the image is complete (nothing left to give back). */
  forget(imageId: number): void {
    this.running.delete(imageId);
  }
}
