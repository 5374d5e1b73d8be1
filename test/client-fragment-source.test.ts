// The CLI's fragment readers: each fragment comes with its own SHA-256, and the whole image's
// SHA-256 is fed the same bytes in order, both taken in one pass of slices over fragments larger
// than a slice (and not a multiple of one), from a file (every fragment, or some of them after a
// resume) and from a stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileFragments, streamFragments, type FragmentReader, type Layout } from '../src/client/fragment-source.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = randomBytes(650_001);
const layout: Layout = { size: bytes.length, fragmentSize: 200_000, fragmentCount: 4 };
const fragment = (i: number) => bytes.subarray(i * layout.fragmentSize, Math.min(bytes.length, (i + 1) * layout.fragmentSize));

let dir: string;
let file: FileHandle;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-fragment-source-'));
  await writeFile(join(dir, 'image.bin'), bytes);
  file = await open(join(dir, 'image.bin'), 'r');
});
afterAll(async () => {
  await file?.close();
  await rm(dir, { recursive: true, force: true });
});

async function readAll(reader: FragmentReader) {
  const buffer = Buffer.alloc(layout.fragmentSize);
  const got: { index: number; data: Buffer; sha256: string }[] = [];
  for (let f = await reader.next(buffer); f; f = await reader.next(buffer)) got.push({ ...f, data: Buffer.from(f.data) });
  return got;
}

describe('fragment readers', () => {
  it('a file, every fragment: each with its own hash, and the whole image hash', async () => {
    const reader = fileFragments(file, layout, [0, 1, 2, 3], { hashWhole: true });
    const got = await readAll(reader);
    expect(got.map((f) => f.index)).toEqual([0, 1, 2, 3]);
    for (const f of got) {
      expect(f.data.equals(fragment(f.index))).toBe(true);
      expect(f.sha256).toBe(sha256(fragment(f.index)));
    }
    expect(reader.digest()).toBe(sha256(bytes));
  });

  it('a file, some fragments (a resume): the skipped ones still count in the whole image hash', async () => {
    const reader = fileFragments(file, layout, [1, 3], { hashWhole: true });
    const got = await readAll(reader);
    expect(got.map((f) => [f.index, f.sha256])).toEqual([
      [1, sha256(fragment(1))],
      [3, sha256(fragment(3))],
    ]);
    expect(reader.digest()).toBe(sha256(bytes));
  });

  it('a file without the whole image hash: each fragment with its own', async () => {
    const reader = fileFragments(file, layout, [2, 0]);
    const got = await readAll(reader);
    expect(got.map((f) => [f.index, f.sha256])).toEqual([
      [2, sha256(fragment(2))],
      [0, sha256(fragment(0))],
    ]);
    expect(reader.digest()).toBeUndefined();
  });

  it('a stream in odd-sized chunks', async () => {
    const chunks = Array.from({ length: Math.ceil(bytes.length / 70_001) }, (_, i) => bytes.subarray(i * 70_001, (i + 1) * 70_001));
    const reader = streamFragments(Readable.from(chunks), layout);
    const got = await readAll(reader);
    expect(got.map((f) => [f.index, f.sha256])).toEqual([0, 1, 2, 3].map((i) => [i, sha256(fragment(i))]));
    expect(reader.digest()).toBe(sha256(bytes));
  });
});
