// The one check every abuse test makes of a measured case (support/abuse.ts measures; the
// bench imports that file too, so the vitest assertions live here).
import { expect } from 'vitest';
import type { AbuseFigures } from './abuse.ts';

/**
 * The coordinator's memory budget in these tests (under 320 MB whatever one client does). It was
 * 300 MB; the SQLite index's checkpoint thread (metadata/checkpointer.ts) adds a fixed ~16 MB of
 * RSS (its own V8 isolate and connection), which no client's requests can grow, and a 20,000-
 * subscribe flood then peaked at 300 MB once in a full run under load.
 */
export const RSS_LIMIT_MB = 320;

/** The coordinator survived, kept serving the other client, and stayed under its memory budget. */
export function expectServed(f: AbuseFigures): void {
  expect(f.coordinatorAlive).toBe(true);
  expect(f.otherClientFailures).toBe(0);
  expect(f.peakRssMB).toBeLessThan(RSS_LIMIT_MB);
}
