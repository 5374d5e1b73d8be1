// deleteImage and abortUpload: the image or upload is gone from the index at once, its name is
// free again, and once the replica deleter is idle no fragment file of it is left on any datanode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { fragmentFileList, fragmentFilesBySha256, settleDeletions } from './support/disk.ts';
import {
  ABORT,
  beginUpload,
  bytesOf,
  DELETE,
  download,
  FRAGMENT_DATA,
  IMAGE,
  listNames,
  sendFragment,
  sha256,
  sliceOf,
  UPLOAD,
  uploadChunked,
  uploadImage,
  type ImageView,
} from './support/images.ts';

const FRAGMENT = 4096;
let cluster: TestCluster;
let keep: { image: ImageView; bytes: Buffer };

beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
  const bytes = bytesOf(2 * FRAGMENT + 9, 1);
  keep = { image: await uploadImage(cluster, 'keep.png', bytes, 'image/png'), bytes };
});
afterAll(() => cluster?.close());

const figures = async () => (await cluster.gql('{ cluster { imageCount storedBytes underReplicatedFragments } }')).cluster;

/** Every fragment of `bytes` still on disk (by content hash), per fragment. */
async function filesOf(bytes: Buffer) {
  const bySha = await fragmentFilesBySha256(cluster);
  return Array.from({ length: Math.ceil(bytes.length / FRAGMENT) }, (_, i) => bySha.get(sha256(sliceOf(bytes, FRAGMENT, i))) ?? []);
}

async function expectKeepIntact() {
  for (const files of await filesOf(keep.bytes)) expect(files).toHaveLength(2);
  const { body } = await download(cluster, 'keep.png');
  expect(body.equals(keep.bytes)).toBe(true);
}

describe('deleteImage', () => {
  it('answers true, then false; the image is gone everywhere and its files leave every datanode', async () => {
    const bytes = bytesOf(5 * FRAGMENT + 77, 2);
    await uploadChunked(cluster, 'doomed/ü.png', bytes, { order: [4, 0, 5, 2, 1, 3], concurrency: 2 });
    await settleDeletions(cluster);
    expect((await filesOf(bytes)).every((f) => f.length === 2)).toBe(true);
    const before = await figures();

    expect(await cluster.gql(DELETE, { n: 'doomed/ü.png' })).toEqual({ deleteImage: true });
    expect(await cluster.gql(DELETE, { n: 'doomed/ü.png' })).toEqual({ deleteImage: false });

    expect(await listNames(cluster)).toEqual(['keep.png']);
    expect((await cluster.gql(IMAGE, { n: 'doomed/ü.png' })).image).toBeNull();
    const { res } = await download(cluster, 'doomed/ü.png');
    expect(res.status).toBe(404);
    expect(codeOf(await cluster.gql.request(FRAGMENT_DATA, { n: 'doomed/ü.png', i: 0 }))).toBe('IMAGE_NOT_FOUND');
    expect(await figures()).toEqual({
      imageCount: before.imageCount - 1,
      storedBytes: before.storedBytes - bytes.length,
      underReplicatedFragments: 0,
    });

    await settleDeletions(cluster);
    expect((await filesOf(bytes)).flat()).toEqual([]);
    await expectKeepIntact();
  });

  it('frees the name for a new image', async () => {
    const first = bytesOf(100, 3);
    const second = bytesOf(FRAGMENT + 1, 4);
    await uploadImage(cluster, 'reused.png', first);
    expect(await cluster.gql(DELETE, { n: 'reused.png' })).toEqual({ deleteImage: true });
    const image = await uploadImage(cluster, 'reused.png', second);
    expect(image.sha256).toBe(sha256(second));
    const { body } = await download(cluster, 'reused.png');
    expect(body.equals(second)).toBe(true);
    expect(await cluster.gql(DELETE, { n: 'reused.png' })).toEqual({ deleteImage: true });
  });

  it('answers false for a name that never was, and for a name held only by an open upload (which stays open)', async () => {
    expect(await cluster.gql(DELETE, { n: 'never-was.png' })).toEqual({ deleteImage: false });
    const s = await beginUpload(cluster, { name: 'uploading.png', size: 10 });
    await sendFragment(cluster, s.id, 0, bytesOf(10, 5));
    expect(await cluster.gql(DELETE, { n: 'uploading.png' })).toEqual({ deleteImage: false });
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload.receivedFragments).toEqual([0]);
    await cluster.gql(ABORT, { u: s.id });
  });

  it('leaves nothing on disk once every image is deleted', async () => {
    const bytes = bytesOf(3 * FRAGMENT, 6);
    await uploadImage(cluster, 'last.png', bytes);
    for (const name of ['last.png', 'keep.png']) expect(await cluster.gql(DELETE, { n: name })).toEqual({ deleteImage: true });
    await settleDeletions(cluster);
    expect(await fragmentFileList(cluster)).toEqual([]);
    expect(await figures()).toEqual({ imageCount: 0, storedBytes: 0, underReplicatedFragments: 0 });
    // Put it back for the tests that follow.
    keep = { image: await uploadImage(cluster, 'keep.png', keep.bytes, 'image/png'), bytes: keep.bytes };
  });
});

describe('DELETE /images/{name}', () => {
  const deleteVia = (path: string, headers: Record<string, string> = {}) => fetch(`${cluster.url}${path}`, { method: 'DELETE', headers });

  it('deletes as deleteImage does: 204, then 404 IMAGE_NOT_FOUND; a / in the name may stand unencoded', async () => {
    const bytes = bytesOf(2 * FRAGMENT + 5, 7);
    await uploadImage(cluster, 'http/dé/l.png', bytes);
    await settleDeletions(cluster);
    const res = await deleteVia(`/images/http/d${encodeURIComponent('é')}/l.png`);
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect((await cluster.gql(IMAGE, { n: 'http/dé/l.png' })).image).toBeNull();
    const again = await deleteVia('/images/http%2Fd%C3%A9%2Fl.png');
    expect(again.status).toBe(404);
    expect(again.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await again.json()).toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await settleDeletions(cluster);
    expect((await filesOf(bytes)).flat()).toEqual([]);
    await expectKeepIntact();
  });

  it('refuses a malformed name, a query and a name held only by an open upload, and changes nothing', async () => {
    for (const path of ['/images/', '/images/a%00b', '/images/%E0%A4%A', `/images/${'x'.repeat(300)}`, '/images/keep.png?w=10']) {
      const res = await deleteVia(path);
      expect(res.status, path).toBe(400);
      expect((await res.json()).code, path).toBe('BAD_USER_INPUT');
    }
    const s = await beginUpload(cluster, { name: 'http-open.png', size: 10 });
    await sendFragment(cluster, s.id, 0, bytesOf(10, 8));
    expect((await deleteVia('/images/http-open.png')).status).toBe(404);
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload.receivedFragments).toEqual([0]);
    await cluster.gql(ABORT, { u: s.id });
    await expectKeepIntact();
  });
});

describe('abortUpload', () => {
  it('drops the upload and every fragment file it stored, and frees the name', async () => {
    const bytes = bytesOf(4 * FRAGMENT - 3, 7);
    const s = await beginUpload(cluster, { name: 'aborted.png', size: bytes.length });
    for (const i of [3, 1, 0]) await sendFragment(cluster, s.id, i, sliceOf(bytes, FRAGMENT, i));
    // A replaced fragment's files are queued too.
    await sendFragment(cluster, s.id, 1, bytesOf(FRAGMENT, 8));
    await settleDeletions(cluster);
    expect((await fragmentFileList(cluster)).length).toBe(2 * keep.image.fragmentCount + 2 * 3);

    expect(await cluster.gql(ABORT, { u: s.id })).toEqual({ abortUpload: true });
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload).toBeNull();
    expect(codeOf(await cluster.gql.request(ABORT, { u: s.id }))).toBe('UPLOAD_NOT_FOUND');
    expect(await listNames(cluster)).toEqual(['keep.png']);

    await settleDeletions(cluster);
    expect((await fragmentFileList(cluster)).length).toBe(2 * keep.image.fragmentCount);
    expect((await filesOf(bytes)).flat()).toEqual([]);
    await expectKeepIntact();

    const again = await beginUpload(cluster, { name: 'aborted.png', size: 1 });
    await cluster.gql(ABORT, { u: again.id });
  });

  it('drops an upload that received nothing', async () => {
    const s = await beginUpload(cluster, { name: 'empty.png', size: 3 * FRAGMENT });
    expect(await cluster.gql(ABORT, { u: s.id })).toEqual({ abortUpload: true });
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload).toBeNull();
  });
});
