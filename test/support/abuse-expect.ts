// The one check every abuse test makes of a measured case (support/abuse.ts measures; the
// bench imports that file too, so the vitest assertions live here).
import { expect } from 'vitest';
import type { AbuseFigures } from './abuse.ts';

/** The coordinator's memory budget in these tests (under 300 MB whatever one client does). */
export const RSS_LIMIT_MB = 300;

/** The coordinator survived, kept serving the other client, and stayed under its memory budget. */
export function expectServed(f: AbuseFigures): void {
  expect(f.coordinatorAlive).toBe(true);
  expect(f.otherClientFailures).toBe(0);
  expect(f.peakRssMB).toBeLessThan(RSS_LIMIT_MB);
}
