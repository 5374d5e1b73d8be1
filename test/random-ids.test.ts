// The pooled random ids: the right length and alphabet, and no repeats across many pool refills
// (each byte of the pool is handed out once).
import { expect, it } from 'vitest';
import { randomBase64url, randomHex } from '../src/shared/random-ids.ts';

it('gives hex and base64url ids of the asked length, never the same twice across refills', () => {
  const seen = new Set<string>();
  // 20,000 x 16 bytes is about 80 refills of the 4 KiB pool, odd sizes in between to shift the boundaries.
  for (let i = 0; i < 20_000; i++) {
    const hex = randomHex(16);
    expect(hex).toMatch(/^[0-9a-f]{32}$/);
    const b64 = randomBase64url(12);
    expect(b64).toMatch(/^[A-Za-z0-9_-]{16}$/);
    if (i % 7 === 0) randomHex(5);
    seen.add(hex);
    seen.add(b64);
  }
  expect(seen.size).toBe(40_000);
  expect(() => randomHex(0)).toThrow(RangeError);
  expect(() => randomHex(4097)).toThrow(RangeError);
});
