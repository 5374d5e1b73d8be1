// The index survives a coordinator restart: every image is listed and downloads byte-identical,
// an open upload keeps its fragments and its name, and can be completed.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { fragmentFileList, settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import {
  BEGIN,
  beginUpload,
  bytesOf,
  COMPLETE,
  DELETE,
  download,
  fragmentData,
  IMAGE,
  listNames,
  sendFragment,
  sha256,
  sliceOf,
  UPLOAD,
  uploadChunked,
  uploadImage,
  type ImageView,
  type Session,
} from './support/images.ts';

const FRAGMENT = 4096;
let cluster: TestCluster;
const stored = [
  { name: 'plain.png', bytes: bytesOf(5 * FRAGMENT + 11, 1), type: 'image/png' },
  { name: 'fotos/férias 🌴.jpg', bytes: bytesOf(3 * FRAGMENT, 2), type: 'image/jpeg' },
  { name: 'Z-small', bytes: bytesOf(17, 3), type: 'application/octet-stream' },
];
const before = new Map<string, ImageView>();
const pending = { name: 'half-done.webp', bytes: bytesOf(6 * FRAGMENT - 1, 4) };
let session: Session;

beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
  before.set(
    stored[0].name,
    await uploadChunked(cluster, stored[0].name, stored[0].bytes, { contentType: stored[0].type, order: [3, 0, 5, 1, 4, 2] }),
  );
  before.set(stored[1].name, await uploadImage(cluster, stored[1].name, stored[1].bytes, stored[1].type));
  before.set(stored[2].name, await uploadChunked(cluster, stored[2].name, stored[2].bytes, { multipart: true }));
  session = await beginUpload(cluster, {
    name: pending.name,
    size: pending.bytes.length,
    contentType: 'image/webp',
    sha256: sha256(pending.bytes),
  });
  for (const i of [5, 2, 0]) await sendFragment(cluster, session.id, i, sliceOf(pending.bytes, FRAGMENT, i));
  session = (await cluster.gql(UPLOAD, { u: session.id })).upload;
  await settleDeletions(cluster);

  await cluster.restartCoordinator();
});
afterAll(() => cluster?.close());

it('lists every image after the restart', async () => {
  expect(await listNames(cluster)).toEqual(['Z-small', 'fotos/férias 🌴.jpg', 'plain.png']);
  const { cluster: figures } = await cluster.gql('{ cluster { imageCount storedBytes underReplicatedFragments } }');
  expect(figures).toEqual({ imageCount: 3, storedBytes: stored.reduce((n, s) => n + s.bytes.length, 0), underReplicatedFragments: 0 });
});

it('serves every image byte-identical, with the same metadata, through GET and fragmentData', async () => {
  for (const { name, bytes, type } of stored) {
    const image = (await cluster.gql(IMAGE, { n: name })).image as ImageView;
    const { url: _url, ...same } = before.get(name)!;
    expect(image).toMatchObject(same);
    expect(image.sha256).toBe(sha256(bytes));
    const { res, body } = await download(cluster, name);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(type);
    expect(body.equals(bytes)).toBe(true);
    const parts = await fragmentData(cluster, name, image.fragmentCount);
    expect(Buffer.concat(parts.map((p) => p.bytes)).equals(bytes)).toBe(true);
  }
});

it('shows the datanodes it knew, and they are UP', async () => {
  await until(
    async () => (await cluster.gql('{ datanodes { status } }')).datanodes.every((n: { status: string }) => n.status === 'UP'),
    'datanodes UP',
  );
  const { datanodes } = await cluster.gql('{ datanodes { url status } }');
  expect(datanodes.map((n: { url: string }) => n.url).sort()).toEqual(cluster.nodes.map((n) => n.url).sort());
});

it('keeps an open upload: its fragments, expiry and name', async () => {
  const open = (await cluster.gql(UPLOAD, { u: session.id })).upload as Session;
  expect(open).toEqual(session);
  expect(open.receivedFragments).toEqual([0, 2, 5]);
  expect(codeOf(await cluster.gql.request(BEGIN, { i: { name: pending.name, size: 1 } }))).toBe('IMAGE_ALREADY_EXISTS');
  expect(await listNames(cluster)).not.toContain(pending.name);
});

it('completes the open upload with the hash checked across the restart, even when completed twice at once', async () => {
  for (const i of [4, 1, 3]) await sendFragment(cluster, session.id, i, sliceOf(pending.bytes, FRAGMENT, i));
  // A client retrying completeUpload: one call wins, the other finds the upload gone, and the
  // hash (checked against the announced one) is that of the bytes, computed once.
  const results = await Promise.all([0, 1].map(() => cluster.gql.request(COMPLETE, { u: session.id })));
  const won = results.filter((r) => !r.errors);
  expect(won).toHaveLength(1);
  expect(results.filter((r) => r.errors).map(codeOf)).toEqual(['UPLOAD_NOT_FOUND']);
  const image = won[0].data.completeUpload as ImageView;
  expect(image.sha256).toBe(sha256(pending.bytes));
  expect(image.contentType).toBe('image/webp');
  expect((await cluster.gql(IMAGE, { n: pending.name })).image.sha256).toBe(sha256(pending.bytes));
  const { res, body } = await download(cluster, pending.name);
  expect(res.headers.get('etag')).toBe(`"${sha256(pending.bytes)}"`);
  expect(body.equals(pending.bytes)).toBe(true);
});

it('serves images of the old fragment size after a restart with another --fragment-size', async () => {
  await cluster.restartCoordinator({ fragmentSize: 3000 });
  const { cluster: figures } = await cluster.gql('{ cluster { fragmentSize } }');
  expect(figures.fragmentSize).toBe(3000);
  const { name, bytes } = stored[0];
  expect((await cluster.gql(IMAGE, { n: name })).image.fragmentSize).toBe(FRAGMENT);
  const { res, body } = await download(cluster, name, { range: `bytes=${FRAGMENT - 5}-${2 * FRAGMENT + 5}` });
  expect(res.status).toBe(206);
  expect(body.equals(bytes.subarray(FRAGMENT - 5, 2 * FRAGMENT + 6))).toBe(true);
  expect((await download(cluster, name)).body.equals(bytes)).toBe(true);
  // New uploads take the new size.
  const fresh = bytesOf(7000, 9);
  const image = await uploadImage(cluster, 'new-size.bin', fresh);
  expect(image).toMatchObject({ fragmentSize: 3000, fragmentCount: 3, sha256: sha256(fresh) });
  expect((await download(cluster, 'new-size.bin')).body.equals(fresh)).toBe(true);
});

it('keeps what was done after the restart through another one, and deletes cleanly', async () => {
  await cluster.restartCoordinator();
  expect(await listNames(cluster)).toEqual(['Z-small', 'fotos/férias 🌴.jpg', 'half-done.webp', 'new-size.bin', 'plain.png']);
  const { body } = await download(cluster, pending.name);
  expect(body.equals(pending.bytes)).toBe(true);

  for (const name of await listNames(cluster)) expect(await cluster.gql(DELETE, { n: name })).toEqual({ deleteImage: true });
  await settleDeletions(cluster);
  expect(await fragmentFileList(cluster)).toEqual([]);
});
