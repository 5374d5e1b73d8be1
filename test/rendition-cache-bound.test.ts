// The rendition cache's budget check: the index is summed (a read of every rendition row) only
// when an upper bound of the cache's bytes passes the budget, or when the last sum is 10 s old.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import type { RenditionRow } from '../src/metadata/renditions.ts';
import { asyncOf, type Sync } from '../src/metadata/async.ts';
import type { AsyncCatalog, AsyncRenditionTable } from '../src/metadata/store.ts';
import type { Replicas } from '../src/cluster/replicas.ts';
import type { ReplicaDeleter } from '../src/cluster/replica-deletions.ts';
import { createRenditionCache } from '../src/renditions/cache.ts';

/** An index of renditions in memory: rows in least-recently-used order, and how often it was summed. */
function fakeIndex(sizes: number[]) {
  let rows: RenditionRow[] = sizes.map((size, i) => ({
    renditionImageId: i + 1,
    sourceImageId: 1,
    variant: `w=${i}`,
    size,
    width: 1,
    height: 1,
    lastUsedAt: i,
  }));
  const index = { sums: 0, deleted: [] as number[] };
  const table = asyncOf<AsyncRenditionTable>({
    totals: () => {
      index.sums += 1;
      return { bytes: rows.reduce((n, r) => n + r.size, 0), count: rows.length };
    },
    leastRecent: (limit: number) => rows.slice(0, limit),
  } as unknown as Sync<AsyncRenditionTable>);
  const catalog = asyncOf<AsyncCatalog>({
    deleteImage: (id: number) => {
      index.deleted.push(id);
      rows = rows.filter((r) => r.renditionImageId !== id);
      return true;
    },
  } as unknown as Sync<AsyncCatalog>);
  const add = (size: number) => {
    const id = rows.length + index.deleted.length + 1;
    rows.push({ renditionImageId: id, sourceImageId: 1, variant: `w=${id}`, size, width: 1, height: 1, lastUsedAt: id });
  };
  return { index, table, catalog, add };
}

function cacheOver(sizes: number[], budgetBytes: number) {
  const fake = fakeIndex(sizes);
  const clock = { t: 1_000_000 };
  const cache = createRenditionCache({
    catalog: fake.catalog,
    table: fake.table,
    replicas: {} as Replicas,
    deleter: { kick: async () => undefined } as unknown as ReplicaDeleter,
    replicationFactor: 2,
    budgetBytes,
    log: pino({ level: 'silent' }),
    now: () => clock.t,
  });
  return { ...fake, cache, clock };
}

describe('rendition cache budget check', () => {
  it('sums the index once, then only when what was cached since could pass the budget', async () => {
    const { index, cache, add } = cacheOver([100, 100], 1000);
    expect(await cache.evict(0)).toBe(0);
    expect(index.sums).toBe(1);
    for (let i = 0; i < 8; i++) {
      add(100);
      expect(await cache.evict(100)).toBe(0);
    }
    expect(index.sums).toBe(1); // 200 + 800 bytes: at the budget, not past it
    add(50);
    expect(await cache.evict(50)).toBe(1); // past it: summed, and the least recently used goes
    expect(index.sums).toBe(2);
    expect(index.deleted).toEqual([1]);
  });

  it('counts renditions it did not write (purges, other coordinators) at the next sum', async () => {
    const { index, cache, add } = cacheOver([600], 1000);
    await cache.evict(0);
    add(600); // written by another coordinator: this one's bound does not know
    add(100);
    expect(await cache.evict(100)).toBe(0);
    expect(index.sums).toBe(1);
    add(400);
    expect(await cache.evict(400)).toBe(2); // its bound 600 + 100 + 400 passes 1000: the sum finds 1700, two 600s go
    expect(index.deleted).toEqual([1, 2]);
    expect(index.sums).toBe(2);
  });

  it('sums the index again once the last sum is 10 s old, over the budget or not', async () => {
    const { index, cache, clock, add } = cacheOver([900], 1000);
    await cache.evict(0);
    add(500); // another coordinator's
    clock.t += 9_999;
    expect(await cache.evict(0)).toBe(0);
    expect(index.sums).toBe(1);
    clock.t += 1;
    expect(await cache.evict(0)).toBe(1);
    expect(index.sums).toBe(2);
    expect(index.deleted).toEqual([1]);
  });
});
