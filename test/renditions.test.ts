// Images as images (issue 13) on a real coordinator and datanodes, with real images made by
// sharp here: dimensions as a viewer shows them, renditions rotated and resized, the cache in
// the cluster (same bytes the second time, purged with its image, LRU past a tiny budget), the
// decompression bomb refused, content-type checks, and auth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { deflateSync } from 'node:zlib';
import { pngChunk } from './support/png.ts';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { rawFetch } from './support/tokens.ts';
import { DELETE, imagePath, uploadChunked, uploadImage, uploadImageRaw } from './support/images.ts';
import { datanodeIds, fragmentFiles, settleDeletions } from './support/disk.ts';

let cluster: TestCluster;
let portrait: Buffer;

const MEDIA = `query($n: String!) { image(name: $n) { contentType format width height orientation } }`;
const RENDITION = `query($n: String!) { image(name: $n) { rendition(width: 300, format: WEBP) { url width height format } } }`;

/** A 3000x2000 JPEG whose EXIF says "rotate 90° clockwise": a viewer shows it 2000x3000. Left half red, right half blue. */
async function makePortrait(): Promise<Buffer> {
  const half = await sharp({ create: { width: 1500, height: 2000, channels: 3, background: { r: 255, g: 0, b: 0 } } })
    .png()
    .toBuffer();
  return sharp({ create: { width: 3000, height: 2000, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .composite([{ input: half, left: 0, top: 0 }])
    .jpeg({ quality: 85 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

/** A PNG whose header claims width x height (grey): a few hundred bytes that would decode to gigabytes. */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.writeUInt8(8, 8); // bit depth 8, colour type 0 (grey)
  const rows = deflateSync(Buffer.alloc((width + 1) * 64)); // the first rows only: enough to start decoding
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(path, { headers: { authorization: `Bearer ${cluster.adminToken}`, ...headers } }).then(async (res) => ({
    res,
    body: Buffer.from(await res.arrayBuffer()),
  }));

beforeAll(async () => {
  cluster = await startCluster({ config: { renditionCacheBytes: 1024 ** 2 } });
  portrait = await makePortrait();
  await uploadImage(cluster, 'photo.jpg', portrait);
}, 60_000);
afterAll(() => cluster?.close());

describe('image metadata', () => {
  it('stores a rotated JPEG with the size a viewer shows and the content type of its bytes', async () => {
    const { image } = await cluster.gql(MEDIA, { n: 'photo.jpg' });
    expect(image).toEqual({ contentType: 'image/jpeg', format: 'JPEG', width: 2000, height: 3000, orientation: 6 });
  });

  it('detects each format from the bytes, in a chunked upload too', async () => {
    for (const format of ['png', 'webp', 'gif', 'avif', 'tiff'] as const) {
      const bytes = await sharp({ create: { width: 40, height: 30, channels: 3, background: 'green' } })
        .toFormat(format)
        .toBuffer();
      await uploadChunked(cluster, `formats/x.${format}`, bytes);
      const { image } = await cluster.gql(MEDIA, { n: `formats/x.${format}` });
      expect({ format: image.format, width: image.width, height: image.height }).toEqual({
        format: format.toUpperCase(),
        width: 40,
        height: 30,
      });
    }
    await uploadImage(
      cluster,
      'formats/x.svg',
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48"/></svg>'),
    );
    expect((await cluster.gql(MEDIA, { n: 'formats/x.svg' })).image).toMatchObject({
      contentType: 'image/svg+xml',
      format: 'SVG',
      width: 64,
      height: 48,
    });
  });

  it('keeps non-images storable with a null format', async () => {
    await uploadImage(cluster, 'notes.txt', Buffer.from('just some text, not a picture'), 'text/plain');
    expect((await cluster.gql(MEDIA, { n: 'notes.txt' })).image).toEqual({
      contentType: 'text/plain',
      format: null,
      width: null,
      height: null,
      orientation: null,
    });
  });

  it('refuses a declared content type that contradicts the bytes, and stores nothing', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    expect(codeOf(await uploadImageRaw(cluster, 'liar.jpg', png, 'image/jpeg'))).toBe('CONTENT_TYPE_MISMATCH');
    expect((await cluster.gql(MEDIA, { n: 'liar.jpg' })).image).toBeNull();
  });
});

describe('renditions', () => {
  it('serves a 300 px wide WebP, rotated as a viewer shows it, then the same bytes from the cache', async () => {
    const first = await get(`${imagePath(cluster, 'photo.jpg')}?w=300&format=webp`);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('content-type')).toBe('image/webp');
    expect(first.res.headers.get('etag')).toMatch(/^"r/);
    expect(first.res.headers.get('cache-control')).toContain('max-age');
    expect(first.res.headers.get('x-content-type-options')).toBe('nosniff');
    const meta = await sharp(first.body).metadata();
    expect({ format: meta.format, width: meta.width, height: meta.height }).toEqual({ format: 'webp', width: 300, height: 450 });
    // Rotated 90° clockwise: the red left half of the stored pixels is now the top.
    const { data } = await sharp(first.body).resize(1, 2, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeGreaterThan(200); // top: red
    expect(data[5]).toBeGreaterThan(200); // bottom: blue

    // Cached in the background, after the answer.
    await expect.poll(async () => (await cluster.app.renditionCache.totals()).count).toBe(1);
    const second = await get(`${imagePath(cluster, 'photo.jpg')}?format=webp&w=300`);
    expect(second.res.headers.get('x-tessera-rendition')).toBe('300x450; cached');
    expect(second.body.equals(first.body)).toBe(true);
    expect(second.res.headers.get('etag')).toBe(first.res.headers.get('etag'));
    const again = await get(`${imagePath(cluster, 'photo.jpg')}?w=300&format=webp`, { 'if-none-match': first.res.headers.get('etag')! });
    expect(again.res.status).toBe(304);
  });

  it('describes the rendition in GraphQL with a signed URL an <img> can load without a token', async () => {
    const { image } = await cluster.gql(RENDITION, { n: 'photo.jpg' });
    expect(image.rendition).toMatchObject({ width: 300, height: 450, format: 'WEBP' });
    expect(image.rendition.url).toContain('signature=');
    const res = await rawFetch(image.rendition.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
  });

  it('needs a token like the original', async () => {
    const res = await rawFetch(`${imagePath(cluster, 'photo.jpg')}?w=300&format=webp`);
    expect(res.status).toBe(401);
    expect((await res.json()).code).toBe('UNAUTHENTICATED');
  });

  it('refuses sizes past the limit and renditions of non-images, with codes', async () => {
    const big = await get(`${imagePath(cluster, 'photo.jpg')}?w=99999`);
    expect([big.res.status, JSON.parse(big.body.toString()).code]).toEqual([400, 'RENDITION_NOT_ALLOWED']);
    const text = await get(`${imagePath(cluster, 'notes.txt')}?w=100`);
    expect([text.res.status, JSON.parse(text.body.toString()).code]).toEqual([415, 'NOT_AN_IMAGE']);
  });

  it('refuses a 30,000 x 30,000 PNG bomb by its header, before decoding it', async () => {
    const bomb = pngBomb(30_000, 30_000);
    await uploadImage(cluster, 'bomb.png', bomb);
    expect((await cluster.gql(MEDIA, { n: 'bomb.png' })).image).toMatchObject({ format: 'PNG', width: 30_000, height: 30_000 });
    const rssBefore = process.memoryUsage().rss;
    const res = await get(`${imagePath(cluster, 'bomb.png')}?w=300`);
    expect([res.res.status, JSON.parse(res.body.toString()).code]).toEqual([413, 'IMAGE_TOO_LARGE']);
    expect(codeOf(await cluster.gql.request(RENDITION, { n: 'bomb.png' }))).toBe('IMAGE_TOO_LARGE');
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 ** 2);
  }, 120_000);

  it("keeps a cached rendition's recorded copy when a restart finds a repair's write intent on it", async () => {
    const path = `${imagePath(cluster, 'photo.jpg')}?w=90&format=png`;
    const first = await get(path);
    const copies = async () =>
      (await cluster.app.indexSql(
        `SELECT r.fragment_id AS f, r.datanode_id AS d FROM renditions x JOIN fragments f ON f.image_id = x.rendition_image_id
          JOIN replicas r ON r.fragment_id = f.id WHERE x.variant LIKE ? ORDER BY r.datanode_id`,
        'w=90&%',
      )) as { f: string; d: string }[];
    await expect.poll(async () => (await copies()).length).toBeGreaterThan(0);
    const [copy] = await copies();
    // An in-place repair rewriting this copy takes an intent on it; the coordinator stops before
    // releasing it, and its next start releases every intent left. The datanodes keep no records
    // of a rendition, so nothing but the index speaks for this file.
    await cluster.app.catalog.addWriteIntents(copy!.f, [copy!.d]);
    await cluster.restartCoordinator();
    await settleDeletions(cluster);
    const node = datanodeIds(cluster).indexOf(copy!.d);
    expect((await fragmentFiles(cluster)).get(copy!.f)).toContain(node);
    expect(await copies()).toContainEqual(copy);
    const again = await get(path);
    expect(again.res.headers.get('x-tessera-rendition')).toMatch(/; cached$/);
    expect(again.body.equals(first.body)).toBe(true);
  });

  it("purges an image's cached renditions when it is deleted", async () => {
    const cache = cluster.app.renditionCache;
    const before = (await cache.totals()).count;
    await get(`${imagePath(cluster, 'photo.jpg')}?w=64&format=png`);
    await expect.poll(async () => (await cache.totals()).count).toBe(before + 1);
    expect(await cluster.gql(DELETE, { n: 'photo.jpg' })).toEqual({ deleteImage: true });
    expect((await cache.totals()).count).toBe(0);
    await settleDeletions(cluster);
  });
});

describe('rendition cache budget, and images stored before detection', () => {
  let small: TestCluster;
  const BUDGET = 25_000;
  beforeAll(async () => {
    small = await startCluster({ config: { renditionCacheBytes: BUDGET } });
    // Noise: each 100 px lossless PNG rendition is some 11 KB, so the budget holds two.
    const noisy = await sharp({
      create: { width: 400, height: 400, channels: 3, background: 'gray', noise: { type: 'gaussian', mean: 128, sigma: 60 } },
    })
      .png()
      .toBuffer();
    await uploadImage(small, 'noise.png', noisy);
  }, 60_000);
  afterAll(() => small?.close());

  /**
   * Fetches a rendition and waits until the cache holds it (it is cached after the answer) and is
   * back within its budget (the eviction follows the write: on PostgreSQL a look can fall between).
   */
  async function rendition(w: number) {
    const res = await fetch(`${imagePath(small, 'noise.png')}?w=${w}&format=png`);
    const answer = { how: res.headers.get('x-tessera-rendition'), size: (await res.arrayBuffer()).byteLength };
    const settled = async () => {
      const [{ n }] = await small.app.indexSql(`SELECT count(*) AS n FROM renditions WHERE variant LIKE ?`, `w=${w}&%`);
      return Number(n) === 1 && (await small.app.renditionCache.totals()).bytes <= BUDGET;
    };
    await expect.poll(settled).toBe(true);
    return answer;
  }

  it('evicts the least recently used rendition past the byte budget', async () => {
    const a = await rendition(100);
    expect(a.size).toBeGreaterThan(BUDGET / 3);
    expect(a.size).toBeLessThan(BUDGET / 2);
    await rendition(101);
    expect((await rendition(100)).how).toBe('100x100; cached');
    await rendition(102); // over budget: 100 goes (made first, touched within the refresh interval)
    const { bytes, count } = await small.app.renditionCache.totals();
    expect(count).toBe(2);
    expect(bytes).toBeLessThanOrEqual(BUDGET);
    expect((await rendition(102)).how).toBe('102x102; cached');
    expect((await rendition(100)).how).toBe('100x100; made');
    await settleDeletions(small);
  });

  it('detects an image stored before detection existed on its first read', async () => {
    await small.app.indexSql(
      `UPDATE images SET format = NULL, width = NULL, height = NULL, orientation = NULL, media_checked = 0 WHERE name = 'noise.png'`,
    );
    expect((await small.gql(MEDIA, { n: 'noise.png' })).image).toMatchObject({ format: 'PNG', width: 400, height: 400 });
    expect((await small.app.indexSql(`SELECT media_checked AS m, width FROM images WHERE name = 'noise.png'`))[0]).toEqual({
      m: 1,
      width: 400,
    });
  });
});
