// Issue 9's memory abuse cases against a real coordinator process (real datanode processes):
// each is refused with a code, the coordinator keeps answering another client meanwhile, and
// its RSS (VmRSS from /proc) stays under 320 MB. Figures: npx tsx bench/abuse-figures.ts.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bigQuery,
  fragmentDataAliases,
  listingAliases,
  measure,
  MiB,
  pinnedWindows,
  seedImage,
  seedSmallImages,
  stalledMultipart,
  startAbuseCluster,
  type AbuseCluster,
} from './support/abuse.ts';
import { expectServed } from './support/abuse-expect.ts';
import { createRunningImageHash } from '../src/image-hash.ts';
import { createWindowBudget } from '../src/memory-budget.ts';

const haveProc = existsSync('/proc/self/status');

describe.skipIf(!haveProc)('abuse cases on a real coordinator (RSS from /proc)', () => {
  let cluster: AbuseCluster;
  beforeAll(async () => {
    cluster = await startAbuseCluster(['--max-upload-image-size', String(8 * MiB)]);
    await seedImage(cluster, 'seed', 2);
    await seedSmallImages(cluster, 'list', 200);
  }, 120_000);
  afterAll(() => cluster?.close());

  it('a 60 MB query: PAYLOAD_TOO_LARGE', async () => {
    const f = await measure(cluster, bigQuery(cluster.url));
    expect(f.codes).toEqual(['PAYLOAD_TOO_LARGE']);
    expectServed(f);
  }, 120_000);

  it('100 aliases of fragmentData, and 8 parallel queries of 150: QUERY_TOO_COMPLEX', async () => {
    for (const run of [fragmentDataAliases(cluster.url, 'seed', 100), fragmentDataAliases(cluster.url, 'seed', 150, 8)]) {
      const f = await measure(cluster, run);
      expect(f.codes).toEqual(['QUERY_TOO_COMPLEX']);
      expectServed(f);
    }
  }, 120_000);

  it('500 aliases of images(first: 1000): QUERY_TOO_COMPLEX', async () => {
    const f = await measure(cluster, listingAliases(cluster.url, 500));
    expect(f.codes).toEqual(['QUERY_TOO_COMPLEX']);
    expectServed(f);
  }, 120_000);

  it('uploadImage past --max-upload-image-size is refused while it is read', async () => {
    const f = await measure(cluster, async () => {
      const r = await stalledMultipart(cluster.url, {
        declared: 50 * MiB,
        send: 20 * MiB,
        query: 'mutation($f: File!) { uploadImage(name: "big", file: $f) { name } }',
        waitMs: 20_000,
      });
      return { outcome: r.answered, codes: [/PAYLOAD_TOO_LARGE/.exec(r.answered)?.[0] ?? r.answered] };
    });
    expect(f.codes).toEqual(['PAYLOAD_TOO_LARGE']); // answered although the body never completes
    expectServed(f);
  }, 120_000);

  it('20 uploads that never send fragment 0 stay within the window budget', async () => {
    const f = await measure(cluster, pinnedWindows(cluster, 20));
    expectServed(f);
  }, 300_000);
});

describe('window budget', () => {
  it('evicts the least recently fed window to the re-read path, and the hash is still right once re-read', () => {
    const budget = createWindowBudget(10);
    const a = createRunningImageHash(100, budget);
    const b = createRunningImageHash(100, budget);
    a.offer(1, Buffer.alloc(6, 1));
    b.offer(1, Buffer.alloc(6, 2)); // 12 > 10: a, the least recent, is evicted
    expect(a.usable).toBe(false);
    expect(b.usable).toBe(true);
    expect(budget.used).toBe(6);
    b.offer(0, Buffer.alloc(6, 3)); // drains both of b's fragments
    expect(budget.used).toBe(0);
    expect(b.digest()).toBe(createHash('sha256').update(Buffer.alloc(6, 3)).update(Buffer.alloc(6, 2)).digest('hex'));
  });
});
