// The images connection: pagination covers every image exactly once in UTF-8 byte order,
// prefix filters (unicode too, LIKE wildcards taken literally), totalCount, first bounds, cursors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { ABORT, beginUpload, bytesOf, LIST, uploadImage } from './support/images.ts';

// Uppercase before lowercase, digits before letters, 'é' (U+00E9) after 'z', CJK after Latin,
// an astral emoji after U+FFFD: a locale collation would order these differently.
const NAMES = [
  'b',
  'B',
  'a',
  'A',
  'aa',
  'a b',
  'a/b',
  'a_b',
  'a%b',
  'ab',
  '10',
  '2',
  '1',
  'Zebra',
  'zebra',
  'z',
  'é',
  'e',
  'éclair',
  'était',
  'eclair',
  'ä',
  '日本',
  '日',
  '🌴',
  '\ufffd',
  'fotos/1.png',
  'fotos/é.png',
  'fotos/Z.png',
  'fotos/2.png',
  'fotosX',
  'x_1',
  'xa1',
  'ÉTÉ',
];
const byteOrder = (names: string[]) => [...names].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster();
  await Promise.all(NAMES.map((name, i) => uploadImage(cluster, name, bytesOf(1 + i, i + 1))));
  // An open upload is not an image: never listed, never counted.
  await beginUpload(cluster, { name: 'a-open-upload', size: 10 });
});
afterAll(() => cluster?.close());

interface Page {
  totalCount: number;
  edges: { cursor: string; node: { name: string; size: number } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}
const page = async (vars: { first?: number; after?: string | null; prefix?: string }): Promise<Page> =>
  (await cluster.gql(LIST, vars)).images;

/** Walks every page of `first` and checks each page's shape on the way. */
async function walk(first: number, prefix?: string) {
  const names: string[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const p: Page = await page({ first, after, prefix });
    expect(p.edges.length).toBeLessThanOrEqual(first);
    names.push(...p.edges.map((e) => e.node.name));
    if (p.edges.length > 0) expect(p.pageInfo.endCursor).toBe(p.edges[p.edges.length - 1].cursor);
    if (!p.pageInfo.hasNextPage) return { names, last: p };
    expect(p.edges).toHaveLength(first);
    after = p.pageInfo.endCursor;
  }
  throw new Error('pagination does not end');
}

describe('pagination', () => {
  it.each([1, 3, 7, NAMES.length - 1, NAMES.length, 1000])(
    'covers every image exactly once in UTF-8 byte order (first: %i)',
    async (first) => {
      const { names, last } = await walk(first);
      expect(names).toEqual(byteOrder(NAMES));
      expect(last.pageInfo.hasNextPage).toBe(false);
      expect(last.totalCount).toBe(NAMES.length);
    },
  );

  it('orders by bytes, not by locale', () => {
    // The expectation itself must differ from a locale sort, or the test above proves little.
    expect(byteOrder(NAMES)).not.toEqual([...NAMES].sort((x, y) => x.localeCompare(y)));
    expect(byteOrder(NAMES).slice(0, 4)).toEqual(['1', '10', '2', 'A']);
  });

  it('defaults first to 50', async () => {
    const extra = Array.from({ length: 51 - NAMES.length }, (_, i) => `zz-default-${String(i).padStart(2, '0')}`);
    await Promise.all(extra.map((name) => uploadImage(cluster, name, bytesOf(3))));
    try {
      const p = await page({});
      expect(p.edges).toHaveLength(50);
      expect(p.pageInfo.hasNextPage).toBe(true);
      expect(p.totalCount).toBe(51);
      const rest = await page({ after: p.pageInfo.endCursor });
      expect(rest.edges.map((e) => e.node.name)).toEqual([byteOrder([...NAMES, ...extra])[50]]);
      expect(rest.pageInfo.hasNextPage).toBe(false);
    } finally {
      for (const name of extra) await cluster.gql(`mutation($n: String!) { deleteImage(name: $n) }`, { n: name });
    }
  });

  // first: 0 is a count query. The contract allows it (0 to 1000), so it is not refused; with no
  // edge there is no endCursor to continue from, so hasNextPage is false too (true with a null
  // endCursor sent clients that follow hasNextPage round in a loop).
  it('takes first: 0 (no edges, the count, no next page and no cursor)', async () => {
    const p = await page({ first: 0 });
    expect(p.edges).toEqual([]);
    expect(p.totalCount).toBe(NAMES.length);
    expect(p.pageInfo.endCursor).toBeNull();
    expect(p.pageInfo.hasNextPage).toBe(false);
  });

  it('answers an empty page after the last image', async () => {
    const all = await page({ first: 1000 });
    const p = await page({ first: 5, after: all.pageInfo.endCursor });
    expect(p.edges).toEqual([]);
    expect(p.pageInfo).toEqual({ hasNextPage: false, endCursor: null });
    expect(p.totalCount).toBe(NAMES.length);
  });

  it('gives cursors that are opaque strings, not names', async () => {
    const p = await page({ first: 1000 });
    expect(new Set(p.edges.map((e) => e.cursor)).size).toBe(NAMES.length);
    for (const e of p.edges) expect(typeof e.cursor).toBe('string');
  });
});

describe('prefix', () => {
  it.each([
    ['fotos/', ['fotos/1.png', 'fotos/2.png', 'fotos/Z.png', 'fotos/é.png']],
    ['a', ['a', 'a b', 'a%b', 'a/b', 'a_b', 'aa', 'ab']],
    ['A', ['A']],
    ['é', ['é', 'éclair', 'était']],
    ['日', ['日', '日本']],
    ['🌴', ['🌴']],
    ['x_', ['x_1']], // '_' is not a wildcard
    ['a%', ['a%b']], // nor is '%'
    ['fotos/é', ['fotos/é.png']],
    ['nothing-matches', []],
  ])('filters by prefix %j, counting the matches', async (prefix, expected) => {
    const first = await page({ first: 1000, prefix });
    expect(first.edges.map((e) => e.node.name)).toEqual(expected);
    expect(first.totalCount).toBe(expected.length);
    expect(first.pageInfo.hasNextPage).toBe(false);
    // And one image per page gives the same, with the count on every page.
    const { names, last } = await walk(1, prefix);
    expect(names).toEqual(expected);
    expect(last.totalCount).toBe(expected.length);
  });

  it('pages within a prefix with hasNextPage and endCursor', async () => {
    const p1 = await page({ first: 2, prefix: 'fotos/' });
    expect(p1.edges.map((e) => e.node.name)).toEqual(['fotos/1.png', 'fotos/2.png']);
    expect(p1.pageInfo.hasNextPage).toBe(true);
    expect(p1.totalCount).toBe(4);
    const p2 = await page({ first: 2, prefix: 'fotos/', after: p1.pageInfo.endCursor });
    expect(p2.edges.map((e) => e.node.name)).toEqual(['fotos/Z.png', 'fotos/é.png']);
    expect(p2.pageInfo.hasNextPage).toBe(false);
    expect(p2.pageInfo.endCursor).toBe(p2.edges[1].cursor);
  });

  it('treats an empty prefix as no filter', async () => {
    expect((await page({ first: 1000, prefix: '' })).totalCount).toBe(NAMES.length);
  });
});

describe('bad arguments', () => {
  it.each([-1, 1001, 100000])('answers BAD_USER_INPUT for first: %i', async (first) => {
    const res = await cluster.gql.request(LIST, { first });
    expect(codeOf(res)).toBe('BAD_USER_INPUT');
    expect(res.data).toBeNull();
  });

  it.each(['', 'not a cursor!', '%%%', 'YQ=='])('answers BAD_USER_INPUT for the cursor %j', async (after) => {
    const res = await cluster.gql.request(LIST, { first: 5, after });
    expect(codeOf(res)).toBe('BAD_USER_INPUT');
  });

  it('takes first: 1000', async () => {
    expect((await page({ first: 1000 })).edges).toHaveLength(NAMES.length);
  });

  it('does not list or count an open upload, and lists it once completed', async () => {
    const all = await page({ first: 1000, prefix: 'a-' });
    expect(all.edges).toEqual([]);
    expect(all.totalCount).toBe(0);
    const s = await beginUpload(cluster, { name: 'a-second-open', size: 1 });
    expect((await page({ first: 1000 })).totalCount).toBe(NAMES.length);
    await cluster.gql(ABORT, { u: s.id });
  });
});
