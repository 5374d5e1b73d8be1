// fast-check properties of what clients hand the coordinator: image names, listing cursors,
// Range headers of GET /images/{name}, and content types (through beginUpload on a real cluster).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertImageName, MAX_NAME_LENGTH, prefixUpperBound } from '../src/names.ts';
import { decodeCursor, encodeCursor } from '../src/image-service.ts';
import { parseRange } from '../src/http/image-route.ts';
import { startCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { TEST_SEED } from './support/seed.ts';
import { codeOfThrown } from './support/errors.ts';

describe('image names', () => {
  it('accepts exactly the well-formed 1..255-character names without control characters, other than . and ..', () => {
    const anyString = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ unit: 'grapheme', maxLength: 300 }),
      fc.constantFrom('.', '..', '', 'a\u0000b', '\ud800'),
    );
    fc.assert(
      fc.property(anyString, (name) => {
        const chars = [...name].length;
        const valid =
          name.isWellFormed() && chars >= 1 && chars <= MAX_NAME_LENGTH && !/\p{Cc}/u.test(name) && name !== '.' && name !== '..';
        expect(codeOfThrown(() => assertImageName(name))).toBe(valid ? undefined : 'BAD_USER_INPUT');
      }),
      { seed: TEST_SEED, numRuns: 2000 },
    );
  });

  it('prefixUpperBound is above every name with the prefix and not above the prefix itself', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((s) => s.isWellFormed()),
        fc.string({ unit: 'binary', maxLength: 5 }).filter((s) => s.isWellFormed()),
        (prefix, rest) => {
          const upper = prefixUpperBound(prefix);
          const cmp = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
          if (upper === undefined) return;
          expect(cmp(prefix + rest, upper)).toBeLessThan(0);
          expect(cmp(prefix, upper)).toBeLessThan(0);
        },
      ),
      { seed: TEST_SEED, numRuns: 1000 },
    );
  });
});

describe('cursors', () => {
  it('decode(encode(name)) is the name for every name', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 255 }).filter((s) => s.isWellFormed()),
        (name) => {
          expect(decodeCursor(encodeCursor(name))).toBe(name);
        },
      ),
      { seed: TEST_SEED, numRuns: 1000 },
    );
  });

  it('any other string is either a cursor of some name or BAD_USER_INPUT, never another error', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (cursor) => {
        const code = codeOfThrown(() => decodeCursor(cursor));
        if (code === undefined) expect(encodeCursor(decodeCursor(cursor))).toBe(cursor);
        else expect(code).toBe('BAD_USER_INPUT');
      }),
      { seed: TEST_SEED, numRuns: 2000 },
    );
  });
});

describe('Range headers', () => {
  const size = fc.integer({ min: 1, max: 2 ** 40 });
  it('a satisfiable range lies inside the body; bytes=a-b within it is served as asked', () => {
    fc.assert(
      fc.property(size, fc.nat(), fc.nat(), (n, a, b) => {
        const [start, end] = a <= b ? [a, b] : [b, a];
        const r = parseRange(`bytes=${start}-${end}`, n);
        if (start >= n) expect(r).toBe('unsatisfiable');
        else expect(r).toEqual({ start, end: Math.min(end, n - 1) });
      }),
      { seed: TEST_SEED, numRuns: 2000 },
    );
  });

  it('any header gives undefined, unsatisfiable, or 0 <= start <= end < size', () => {
    const header = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc
        .tuple(
          fc.constantFrom('bytes=', 'Bytes=', ' bytes=', 'bytes = '),
          fc.oneof(fc.nat().map(String), fc.constant('')),
          fc.constantFrom('-', ',', '--'),
          fc.oneof(fc.nat().map(String), fc.constant(''), fc.constant('1-2')),
        )
        .map((p) => p.join('')),
    );
    fc.assert(
      fc.property(header, size, (h, n) => {
        const r = parseRange(h, n);
        if (r === undefined || r === 'unsatisfiable') return;
        expect(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end)).toBe(true);
        expect(0 <= r.start && r.start <= r.end && r.end < n).toBe(true);
      }),
      { seed: TEST_SEED, numRuns: 3000 },
    );
  });

  it('a suffix range bytes=-k serves the last min(k, size) bytes', () => {
    fc.assert(
      fc.property(size, fc.integer({ min: 1, max: 2 ** 41 }), (n, k) => {
        expect(parseRange(`bytes=-${k}`, n)).toEqual({ start: Math.max(n - k, 0), end: n - 1 });
      }),
      { seed: TEST_SEED, numRuns: 1000 },
    );
  });
});

describe('content types (beginUpload on a real cluster)', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 2 });
  });
  afterAll(() => cluster?.close());

  it('a content type is stored exactly as given, or refused with BAD_USER_INPUT and nothing opened', async () => {
    const token = fc.stringMatching(/^[\w.+-]{1,20}$/);
    const contentType = fc.oneof(
      fc.tuple(token, token).map(([a, b]) => `${a}/${b}`),
      fc.tuple(token, token, fc.string({ maxLength: 30 })).map(([a, b, p]) => `${a}/${b}; ${p}`),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.constantFrom('text/html', 'image/png', 'a/b\r\nx: y', 'image/png\u0000', '/', 'x/'),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(contentType, async (type) => {
        const name = `ct-${n++}`;
        const res = await cluster.gql.request('mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id contentType } }', {
          i: { name, size: 1, contentType: type },
        });
        if (res.errors) {
          expect(codeOf(res)).toBe('BAD_USER_INPUT');
          expect(
            (await cluster.gql.request('{ images(prefix: "ct-") { edges { node { name } } } }')).data.images.edges.map(
              (e: { node: { name: string } }) => e.node.name,
            ),
          ).not.toContain(name);
        } else {
          expect(res.data.beginUpload.contentType).toBe(type);
          expect(type.length).toBeLessThanOrEqual(255);
          expect(/[\u0000-\u001f\u007f]/.test(type)).toBe(false);
          await cluster.gql('mutation($u: ID!) { abortUpload(uploadId: $u) }', { u: res.data.beginUpload.id });
        }
      }),
      { seed: TEST_SEED, numRuns: 150 },
    );
  });
});
