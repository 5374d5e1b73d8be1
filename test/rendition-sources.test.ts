// The recent-sources cache of renditions: one datanode read serves the sizes a gallery asks for.
import { describe, expect, it } from 'vitest';
import type { ImageRow } from '../src/metadata/catalog.ts';
import { createSourceCache } from '../src/renditions/sources.ts';

const image = (id: number, size: number) => ({ id, sha256: `sha-${id}`, size }) as ImageRow;

function counting() {
  const reads: number[] = [];
  const read = async (row: ImageRow) => {
    reads.push(row.id);
    await new Promise((r) => setImmediate(r));
    return Buffer.alloc(row.size, row.id);
  };
  return { reads, read };
}

describe('rendition sources', () => {
  it('shares one read between renditions of a source being read, and keeps it for the next', async () => {
    const { reads, read } = counting();
    const sources = createSourceCache(read, 1000);
    const [a, b] = await Promise.all([sources.read(image(1, 100)), sources.read(image(1, 100))]);
    expect(a.equals(b)).toBe(true);
    expect(reads).toEqual([1]);
    expect((await sources.read(image(1, 100))).length).toBe(100);
    expect(reads).toEqual([1]);
  });

  it('holds at most its budget, dropping the least recently used source', async () => {
    const { reads, read } = counting();
    const sources = createSourceCache(read, 250);
    await sources.read(image(1, 100));
    await sources.read(image(2, 100));
    await sources.read(image(1, 100)); // 1 is now the most recent
    await sources.read(image(3, 100)); // over budget: 2 goes
    expect(sources.heldBytes).toBeLessThanOrEqual(250);
    await sources.read(image(1, 100));
    await sources.read(image(2, 100));
    expect(reads).toEqual([1, 2, 3, 2]);
  });

  it('does not keep a source larger than its budget, and forgets a failed read', async () => {
    const { reads, read } = counting();
    const sources = createSourceCache(read, 50);
    await sources.read(image(1, 100));
    await sources.read(image(1, 100));
    expect(reads).toEqual([1, 1]);
    expect(sources.heldBytes).toBe(0);
    let fail = true;
    const flaky = createSourceCache(async (row) => {
      if (fail) throw new Error('datanodes unreachable');
      return Buffer.alloc(row.size);
    }, 1000);
    await expect(flaky.read(image(4, 10))).rejects.toThrow('unreachable');
    fail = false;
    expect((await flaky.read(image(4, 10))).length).toBe(10);
  });
});
