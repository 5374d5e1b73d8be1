// Unit tests of the running whole-image SHA-256: fragments hashed in index order as they
// arrive, early ones held in a bounded window, and the cases that make it unusable.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createRunningImageHash } from '../src/image-hash.ts';

const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');
const frags = Array.from({ length: 6 }, (_, i) => randomBytes(100 + i));

describe('createRunningImageHash', () => {
  it('hashes fragments offered in order', () => {
    const h = createRunningImageHash(0);
    frags.forEach((f, i) => {
      h.offer(i, f);
      expect(h.next).toBe(i + 1);
    });
    expect(h.usable).toBe(true);
    expect(h.digest()).toBe(sha(...frags));
  });

  it('holds early fragments within the window and hashes them when their turn comes', () => {
    const h = createRunningImageHash(10_000);
    for (const i of [3, 1, 5, 2]) h.offer(i, frags[i]);
    expect(h.next).toBe(0);
    h.offer(0, frags[0]);
    expect(h.next).toBe(4); // 0, 1, 2, 3 drained
    h.offer(4, frags[4]);
    expect(h.next).toBe(6);
    expect(h.usable).toBe(true);
    expect(h.digest()).toBe(sha(...frags));
  });

  it('gives up when the early fragments overflow the window', () => {
    const h = createRunningImageHash(250);
    h.offer(1, frags[1]);
    h.offer(2, frags[2]);
    expect(h.usable).toBe(true);
    h.offer(3, frags[3]); // 101 + 102 + 103 > 250
    expect(h.usable).toBe(false);
    h.offer(0, frags[0]); // ignored once unusable
    expect(h.next).toBe(0);
  });

  it('gives up when a fragment it already hashed is replaced', () => {
    const h = createRunningImageHash(10_000);
    h.offer(0, frags[0]);
    h.offer(1, frags[1]);
    expect(h.next).toBe(2);
    h.offer(1, randomBytes(101));
    expect(h.usable).toBe(false);
  });

  it('takes the latest copy of an early fragment sent twice', () => {
    const h = createRunningImageHash(10_000);
    const first = randomBytes(102);
    h.offer(2, first);
    h.offer(2, frags[2]);
    h.offer(1, frags[1]);
    h.offer(0, frags[0]);
    expect(h.next).toBe(3);
    for (const i of [3, 4, 5]) h.offer(i, frags[i]);
    expect(h.digest()).toBe(sha(...frags));
  });

  it('counts a replaced early fragment once in the window', () => {
    const h = createRunningImageHash(150);
    h.offer(2, frags[2]);
    h.offer(2, frags[2]); // 102 buffered, not 204
    expect(h.usable).toBe(true);
  });

  it('catches up with pushed (re-read) fragments, draining the early ones behind them', () => {
    const h = createRunningImageHash(10_000);
    h.offer(1, frags[1]);
    h.offer(2, frags[2]);
    h.push(frags[0]);
    expect(h.next).toBe(3);
    for (const i of [3, 4, 5]) h.push(frags[i]);
    expect(h.digest()).toBe(sha(...frags));
  });

  it('is unusable after its digest', () => {
    const h = createRunningImageHash(0);
    h.offer(0, frags[0]);
    expect(h.digest()).toBe(sha(frags[0]));
    expect(h.usable).toBe(false);
  });
});
