// Chunked and one-shot uploads against real datanodes: fragments in any order, concurrently,
// as base64 or multipart, come back byte-identical; re-sending an index replaces it on disk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { fragmentFilesBySha256, settleDeletions } from './support/disk.ts';
import {
  ABORT,
  beginUpload,
  bytesOf,
  COMPLETE,
  completeUpload,
  curlMultipart,
  download,
  fragmentData,
  IMAGE,
  listNames,
  SEND_FILE,
  sendFragment,
  sha256,
  sliceOf,
  UPLOAD,
  uploadChunked,
  uploadImage,
  type ImageView,
} from './support/images.ts';

const FRAGMENT = 16 * 1024;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
});
afterAll(() => cluster?.close());

/** The image as listed, through fragmentData (each fragment's hash checked) and through GET. */
async function expectStored(image: ImageView, bytes: Buffer, contentType: string) {
  expect(image.size).toBe(bytes.length);
  expect(image.sha256).toBe(sha256(bytes));
  expect(image.contentType).toBe(contentType);
  expect(image.fragmentSize).toBe(FRAGMENT);
  expect(image.fragmentCount).toBe(Math.ceil(bytes.length / FRAGMENT));
  expect(image.fragments.map((f) => f.index)).toEqual([...Array(image.fragmentCount).keys()]);
  image.fragments.forEach((f, i) => {
    expect(f.size).toBe(sliceOf(bytes, FRAGMENT, i).length);
    expect(f.sha256).toBe(sha256(sliceOf(bytes, FRAGMENT, i)));
  });

  const parts = await fragmentData(cluster, image.name, image.fragmentCount);
  parts.forEach((p, i) => {
    expect(p.index).toBe(i);
    expect(sha256(p.bytes)).toBe(p.sha256);
    expect(p.sha256).toBe(sha256(sliceOf(bytes, FRAGMENT, i)));
    expect(p.size).toBe(p.bytes.length);
  });
  expect(Buffer.concat(parts.map((p) => p.bytes)).equals(bytes)).toBe(true);

  const { res, body } = await download(cluster, image.name);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe(contentType);
  expect(body.length).toBe(bytes.length);
  expect(body.equals(bytes)).toBe(true);
  const viaUrl = await fetch(image.url);
  expect(Buffer.from(await viaUrl.arrayBuffer()).equals(bytes)).toBe(true);

  const looked = (await cluster.gql(IMAGE, { n: image.name })).image as ImageView;
  expect(looked.sha256).toBe(sha256(bytes));
  expect(looked.contentType).toBe(contentType);
}

describe('chunked upload', () => {
  it('takes base64 fragments out of order and concurrently, and serves the image byte-identical', async () => {
    const bytes = bytesOf(7 * FRAGMENT + 1234, 11);
    const image = await uploadChunked(cluster, 'out-of-order.png', bytes, {
      contentType: 'image/png',
      order: [5, 2, 7, 0, 6, 1, 3, 4],
      concurrency: 3,
    });
    expect(image.name).toBe('out-of-order.png');
    await expectStored(image, bytes, 'image/png');
  });

  it('takes multipart fragments (the spec curl shape) for a unicode name', async () => {
    const name = 'fotos/férias 🌴.png';
    const bytes = bytesOf(3 * FRAGMENT + 99, 12);
    const session = await beginUpload(cluster, { name, size: bytes.length, contentType: 'image/png' });
    expect(session.name).toBe(name);
    for (const i of [3, 1, 0, 2]) {
      const res = await curlMultipart(
        cluster,
        SEND_FILE,
        { u: session.id, i, f: null, s: null },
        'variables.f',
        sliceOf(bytes, FRAGMENT, i),
      );
      expect(res.errors).toBeUndefined();
      expect(res.data.uploadFragment).toMatchObject({
        index: i,
        size: sliceOf(bytes, FRAGMENT, i).length,
        sha256: sha256(sliceOf(bytes, FRAGMENT, i)),
      });
      expect(res.data.uploadFragment.replicas).toHaveLength(2);
    }
    const image = await completeUpload(cluster, session.id);
    expect(image.name).toBe(name);
    expect(image.url.endsWith(`/images/${encodeURIComponent(name)}`)).toBe(true);
    await expectStored(image, bytes, 'image/png');
    expect(await listNames(cluster, 'fotos/')).toEqual([name]);
  });

  it('takes fragments through the multipart helper with a per-fragment sha256', async () => {
    const bytes = bytesOf(2 * FRAGMENT + 5, 13);
    const session = await beginUpload(cluster, { name: 'multipart-sha.jpg', size: bytes.length, contentType: 'image/jpeg' });
    for (const i of [2, 0, 1]) {
      const slice = sliceOf(bytes, FRAGMENT, i);
      const receipt = await sendFragment(cluster, session.id, i, slice, { multipart: true, sha256: sha256(slice) });
      expect(receipt.sha256).toBe(sha256(slice));
    }
    await expectStored(await completeUpload(cluster, session.id), bytes, 'image/jpeg');
  });

  it('lists received fragments ascending and gives an expiry', async () => {
    const bytes = bytesOf(5 * FRAGMENT + 1, 14);
    const before = Date.now();
    const session = await beginUpload(cluster, { name: 'progress.bin', size: bytes.length });
    expect(session).toMatchObject({
      name: 'progress.bin',
      size: bytes.length,
      fragmentSize: FRAGMENT,
      fragmentCount: 6,
      receivedFragments: [],
    });
    // The default TTL is 24 h; the expiry is an ISO instant that far ahead.
    const expiresAt = Date.parse(session.expiresAt);
    expect(session.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 86_400_000 - 60_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 86_400_000 + 60_000);

    for (const i of [4, 1, 5]) await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
    const open = (await cluster.gql(UPLOAD, { u: session.id })).upload;
    expect(open.receivedFragments).toEqual([1, 4, 5]);
    expect(Date.parse(open.expiresAt)).toBeGreaterThan(Date.now());
    expect(await cluster.gql(ABORT, { u: session.id })).toEqual({ abortUpload: true });
  });
});

describe('sending an index again', () => {
  it('replaces a fragment already folded into the running hash, and its old replica files go', async () => {
    const bytes = bytesOf(3 * FRAGMENT, 15);
    const session = await beginUpload(cluster, { name: 'replaced-hashed.bin', size: bytes.length });
    for (const i of [0, 1, 2]) await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
    await settleDeletions(cluster);
    const oldSlice = sliceOf(bytes, FRAGMENT, 1);
    expect((await fragmentFilesBySha256(cluster)).get(sha256(oldSlice))).toHaveLength(2);

    const replacement = bytesOf(FRAGMENT, 16);
    const receipt = await sendFragment(cluster, session.id, 1, replacement);
    expect(receipt.sha256).toBe(sha256(replacement));
    expect((await cluster.gql(UPLOAD, { u: session.id })).upload.receivedFragments).toEqual([0, 1, 2]);

    await settleDeletions(cluster);
    const onDisk = await fragmentFilesBySha256(cluster);
    expect(onDisk.get(sha256(oldSlice))).toBeUndefined();
    expect(new Set(onDisk.get(sha256(replacement))!.map((f) => f.node)).size).toBe(2);

    const expected = Buffer.concat([sliceOf(bytes, FRAGMENT, 0), replacement, sliceOf(bytes, FRAGMENT, 2)]);
    await expectStored(await completeUpload(cluster, session.id), expected, 'application/octet-stream');
  });

  it('replaces a fragment still waiting for its turn in the running hash', async () => {
    const bytes = bytesOf(3 * FRAGMENT - 7, 17);
    const session = await beginUpload(cluster, { name: 'replaced-early.bin', size: bytes.length, contentType: 'image/webp' });
    const wrongLast = bytesOf(sliceOf(bytes, FRAGMENT, 2).length, 18);
    await sendFragment(cluster, session.id, 2, wrongLast);
    await sendFragment(cluster, session.id, 2, sliceOf(bytes, FRAGMENT, 2));
    await sendFragment(cluster, session.id, 0, sliceOf(bytes, FRAGMENT, 0));
    await sendFragment(cluster, session.id, 1, sliceOf(bytes, FRAGMENT, 1));
    await expectStored(await completeUpload(cluster, session.id), bytes, 'image/webp');
    await settleDeletions(cluster);
    expect((await fragmentFilesBySha256(cluster)).get(sha256(wrongLast))).toBeUndefined();
  });
});

describe('races', () => {
  it('keeps one of two concurrent sends of the same index, consistently, and removes the other', async () => {
    const bytes = bytesOf(2 * FRAGMENT, 21);
    const variants = [bytesOf(FRAGMENT, 22), bytesOf(FRAGMENT, 23)];
    const session = await beginUpload(cluster, { name: 'race-index.bin', size: bytes.length });
    await sendFragment(cluster, session.id, 0, sliceOf(bytes, FRAGMENT, 0));
    await Promise.all(variants.map((v, i) => sendFragment(cluster, session.id, 1, v, { multipart: i === 1 })));
    expect((await cluster.gql(UPLOAD, { u: session.id })).upload.receivedFragments).toEqual([0, 1]);
    const image = await completeUpload(cluster, session.id);
    const kept = variants.find((v) => sha256(v) === image.fragments[1].sha256)!;
    expect(kept).toBeDefined();
    await expectStored(image, Buffer.concat([sliceOf(bytes, FRAGMENT, 0), kept]), 'application/octet-stream');
    await settleDeletions(cluster);
    const onDisk = await fragmentFilesBySha256(cluster);
    expect(onDisk.get(sha256(kept))).toHaveLength(2);
    expect(onDisk.get(sha256(variants.find((v) => v !== kept)!))).toBeUndefined();
  });

  it('completes once when completeUpload is sent twice at once', async () => {
    const bytes = bytesOf(3 * FRAGMENT + 3, 24);
    const session = await beginUpload(cluster, { name: 'race-complete.bin', size: bytes.length });
    for (const i of [3, 2, 1, 0]) await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
    const results = await Promise.all([0, 1].map(() => cluster.gql.request(COMPLETE, { u: session.id })));
    expect(results.filter((r) => r.errors).map((r) => r.errors![0].extensions?.code)).toEqual(['UPLOAD_NOT_FOUND']);
    const image = results.find((r) => !r.errors)!.data.completeUpload as ImageView;
    await expectStored(image, bytes, 'application/octet-stream');
  });
});

describe('uploadImage', () => {
  it('stores a whole file sent in one multipart request', async () => {
    const bytes = bytesOf(4 * FRAGMENT + 321, 19);
    const image = await uploadImage(cluster, 'one-shot.gif', bytes, 'image/gif');
    expect(image.name).toBe('one-shot.gif');
    await expectStored(image, bytes, 'image/gif');
  });

  it('stores a file smaller than one fragment', async () => {
    const bytes = bytesOf(10, 20);
    const image = await uploadImage(cluster, 'tiny.png', bytes, 'image/png');
    expect(image.fragmentCount).toBe(1);
    await expectStored(image, bytes, 'image/png');
  });
});

it('completes 4 concurrent uploads, each sending fragments concurrently', async () => {
  const sizes = [6 * FRAGMENT + 17, 4 * FRAGMENT, 5 * FRAGMENT - 1, 3 * FRAGMENT + 2];
  const files = sizes.map((size, i) => ({ name: `concurrent/${i}.png`, bytes: bytesOf(size, 100 + i) }));
  const images = await Promise.all(
    files.map((f, i) =>
      uploadChunked(cluster, f.name, f.bytes, {
        contentType: 'image/png',
        concurrency: 3,
        order: [...Array(Math.ceil(f.bytes.length / FRAGMENT)).keys()].reverse(),
        multipart: i % 2 === 1,
      }),
    ),
  );
  expect(await listNames(cluster, 'concurrent/')).toEqual(files.map((f) => f.name));
  for (const [i, image] of images.entries()) await expectStored(image, files[i].bytes, 'image/png');
});
