// Unit tests of the running whole-image SHA-256: fragments hashed in index order as they
// arrive, early ones held in a bounded window, and the cases that make it unusable.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createRunningImageHash } from '../src/image-hash.ts';
import { RunningHashes } from '../src/uploads/running-hashes.ts';
import type { CoordinatorConfig } from '../src/config.ts';

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

describe('RunningHashes across coordinators', () => {
  const config = { fragmentSize: 200, uploadTtlSec: 60 } as CoordinatorConfig;
  const digests = frags.map((f) => sha(f));
  const current = (replaced?: number) => digests.map((d, i) => ({ sha256: i === replaced ? sha(randomBytes(8)) : d }));

  it('keeps the hash of the fragments fed here while they are still the ones in the index', () => {
    const hashes = new RunningHashes(config);
    for (const i of [0, 1, 2]) hashes.offer('7', 6, i, frags[i], digests[i]);
    const h = hashes.take('7', current());
    expect(h.next).toBe(3);
    for (const f of frags.slice(3)) h.push(f); // the catch-up from the datanodes
    expect(h.digest()).toBe(sha(...frags));
  });

  it('starts from 0 when a fragment fed here was replaced through another coordinator', () => {
    const hashes = new RunningHashes(config);
    for (const i of [0, 1, 4]) hashes.offer('7', 6, i, frags[i], digests[i]);
    expect(hashes.take('7', current(1)).next).toBe(0);
    for (const i of [0, 1, 4]) hashes.offer('8', 6, i, frags[i], digests[i]);
    expect(hashes.take('8', current(4)).next).toBe(0); // held early, replaced elsewhere
    hashes.offer('9', 1, 0, frags[0], digests[0]);
    expect(hashes.take('9', [{ sha256: 'other' }]).next).toBe(0);
  });

  it('drops the hashes of uploads fed nothing for an upload lifetime (completed elsewhere)', () => {
    let t = 0;
    const hashes = new RunningHashes(config, () => t);
    hashes.offer('1', 6, 0, frags[0], digests[0]);
    t = 61_000;
    for (let id = 2; id < 2 + 256; id += 1) hashes.offer(String(id), 6, 0, frags[0], digests[0]);
    expect(hashes.take('1', current()).next).toBe(0);
    expect(hashes.take('2', current()).next).toBe(1);
  });
});
