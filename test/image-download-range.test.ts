// GET/HEAD /images/{name}: headers, single byte ranges (across fragment boundaries), 416, 304,
// unicode names with '/' (encoded or not), If-Range, and JSON error bodies (404, 405, 416).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { bytesOf, download, imagePath, sha256, uploadChunked, uploadImage } from './support/images.ts';

const FRAGMENT = 4096;
const NAME = 'álbum/2024/día 1 🌅.jpg';
const bytes = bytesOf(3 * FRAGMENT + 1000, 42); // 4 fragments, the last one 1000 bytes
const size = bytes.length;
const etag = `"${sha256(bytes)}"`;

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
  await uploadChunked(cluster, NAME, bytes, { contentType: 'image/jpeg', order: [3, 1, 2, 0] });
});
afterAll(() => cluster?.close());

const get = (headers: Record<string, string> = {}, name = NAME) => download(cluster, name, headers);

describe('GET /images/{name}', () => {
  it('serves the whole image with its headers', async () => {
    const { res, body } = await get();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(res.headers.get('etag')).toBe(etag);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('content-range')).toBeNull();
    expect(body.equals(bytes)).toBe(true);
  });

  it('finds a name URL-encoded with unicode and %2F, under the URL the API gives', async () => {
    const path = imagePath(cluster, NAME);
    expect(path).toContain('%2F');
    const { image } = await cluster.gql('query($n: String!) { image(name: $n) { url } }', { n: NAME });
    expect(image.url).toBe(path);
    const res = await fetch(image.url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('finds names with URL-special characters', async () => {
    const names = [
      'what?.png',
      '100%.png',
      'a#b',
      'plus+sign',
      "it's (1)!.png",
      'back\\slash',
      'semi;colon&amp=1',
      ' leading space',
      '%2F',
    ];
    for (const [i, name] of names.entries()) {
      const data = bytesOf(50 + i, 100 + i);
      const image = await uploadImage(cluster, name, data, 'image/png');
      const viaUrl = await fetch(image.url);
      expect(viaUrl.status, name).toBe(200);
      expect(Buffer.from(await viaUrl.arrayBuffer()).equals(data)).toBe(true);
      const { body } = await get({}, name);
      expect(body.equals(data)).toBe(true);
    }
  });

  it('answers 404 with a JSON IMAGE_NOT_FOUND body for an unknown name', async () => {
    for (const name of ['unknown', 'álbum', NAME.toUpperCase(), `${NAME} `]) {
      const { res, body } = await get({}, name);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const json = JSON.parse(body.toString('utf8'));
      expect(json.code).toBe('IMAGE_NOT_FOUND');
      expect(typeof json.message).toBe('string');
      expect(json.message.length).toBeGreaterThan(0);
    }
  });

  it('takes an unencoded "/" as part of the name, as S3 takes it in a key', async () => {
    const res = await fetch(`${cluster.url}/images/${NAME.split('/').map(encodeURIComponent).join('/')}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);

    const tabby = bytesOf(300, 9);
    await uploadImage(cluster, 'cats/tabby.png', tabby, 'image/png'); // the README's example
    const plain = await fetch(`${cluster.url}/images/cats/tabby.png`);
    expect(plain.status).toBe(200);
    expect(Buffer.from(await plain.arrayBuffer()).equals(tabby)).toBe(true);
    const nested = await fetch(`${cluster.url}/images/cats/tabby.png/more`);
    expect(nested.status).toBe(404);
    expect((await nested.json()).code).toBe('IMAGE_NOT_FOUND');
  });

  it('answers a method other than GET, HEAD, PUT or DELETE with 405, Allow and a JSON body with a code', async () => {
    for (const method of ['POST', 'PATCH', 'OPTIONS']) {
      const res = await fetch(imagePath(cluster, NAME), { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE');
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect((await res.json()).code).toBe('METHOD_NOT_ALLOWED');
    }
  });

  it('answers a malformed name with 400 BAD_USER_INPUT, without echoing it', async () => {
    const long = 'x'.repeat(5000);
    for (const path of [`/images/${long}`, '/images/%E0%A4%A', '/images/', '/images/a%00b']) {
      const res = await fetch(`${cluster.url}${path}`);
      expect(res.status, path).toBe(400);
      const json = await res.json();
      expect(json.code).toBe('BAD_USER_INPUT');
      expect(json.message).not.toContain(long);
    }
  });
});

describe('Range', () => {
  const range = async (header: string, start: number, end: number) => {
    const { res, body } = await get({ range: header });
    expect(res.status, header).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
    expect(res.headers.get('content-length')).toBe(String(end - start + 1));
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('etag')).toBe(etag);
    expect(body.length).toBe(end - start + 1);
    expect(body.equals(bytes.subarray(start, end + 1))).toBe(true);
  };

  it('serves bytes=a-b across one fragment boundary with exactly those bytes', async () => {
    await range(`bytes=${FRAGMENT - 100}-${FRAGMENT + 99}`, FRAGMENT - 100, FRAGMENT + 99);
    await range(`bytes=${FRAGMENT - 1}-${FRAGMENT}`, FRAGMENT - 1, FRAGMENT);
  });

  it('serves bytes=a-b spanning several fragments, and ranges inside one', async () => {
    await range(`bytes=10-${3 * FRAGMENT + 10}`, 10, 3 * FRAGMENT + 10);
    await range(`bytes=${FRAGMENT}-${2 * FRAGMENT - 1}`, FRAGMENT, 2 * FRAGMENT - 1);
    await range('bytes=0-0', 0, 0);
    await range(`bytes=${size - 1}-${size - 1}`, size - 1, size - 1);
    await range(`bytes=5-${size + 1000}`, 5, size - 1); // an end past the image is clamped
  });

  it('serves bytes=a- to the end', async () => {
    await range(`bytes=${2 * FRAGMENT - 7}-`, 2 * FRAGMENT - 7, size - 1);
    await range('bytes=0-', 0, size - 1);
  });

  it('serves bytes=-n, the last n bytes', async () => {
    await range('bytes=-1500', size - 1500, size - 1);
    await range(`bytes=-${size + 50}`, 0, size - 1);
  });

  it('answers 416 with Content-Range bytes */size for an unsatisfiable range', async () => {
    for (const header of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const { res, body } = await get({ range: header });
      expect(res.status, header).toBe(416);
      expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(JSON.parse(body.toString('utf8')).code).toBe('RANGE_NOT_SATISFIABLE');
    }
  });
});

describe('If-Range', () => {
  it('honours the range when If-Range holds the current ETag or Last-Modified', async () => {
    const { res: whole } = await get();
    const lastModified = whole.headers.get('last-modified')!;
    for (const validator of [etag, lastModified]) {
      const { res, body } = await get({ range: 'bytes=0-9', 'if-range': validator });
      expect(res.status, validator).toBe(206);
      expect(body.equals(bytes.subarray(0, 10))).toBe(true);
    }
  });

  it('serves the whole image (200) when the If-Range validator is stale or weak', async () => {
    const { res: whole } = await get();
    const earlier = new Date(Date.parse(whole.headers.get('last-modified')!) - 3_600_000).toUTCString();
    for (const validator of [`"${sha256(Buffer.from('old version'))}"`, `W/${etag}`, earlier, 'not a date']) {
      const { res, body } = await get({ range: 'bytes=0-9', 'if-range': validator });
      expect(res.status, validator).toBe(200);
      expect(res.headers.get('content-range')).toBeNull();
      expect(body.equals(bytes)).toBe(true);
    }
  });

  it('lets a stale If-Range override an unsatisfiable range too (whole image, not 416)', async () => {
    const { res, body } = await get({ range: `bytes=${size + 5}-`, 'if-range': '"stale"' });
    expect(res.status).toBe(200);
    expect(body.length).toBe(size);
  });
});

describe('conditional requests and HEAD', () => {
  it('answers 304 with no body to If-None-Match with the ETag', async () => {
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const { res, body } = await get({ 'if-none-match': header });
      expect(res.status, header).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect(body.length).toBe(0);
    }
  });

  it('answers 304 to a ranged request whose If-None-Match matches', async () => {
    const { res } = await get({ 'if-none-match': etag, range: 'bytes=0-9' });
    expect(res.status).toBe(304);
  });

  it('serves the image to If-None-Match with another ETag', async () => {
    const { res, body } = await get({ 'if-none-match': `"${sha256(Buffer.from('other'))}"` });
    expect(res.status).toBe(200);
    expect(body.equals(bytes)).toBe(true);
  });

  it('answers HEAD with the same headers and no body', async () => {
    const res = await fetch(imagePath(cluster, NAME), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(res.headers.get('etag')).toBe(etag);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect((await res.arrayBuffer()).byteLength).toBe(0);

    const ranged = await fetch(imagePath(cluster, NAME), { method: 'HEAD', headers: { range: 'bytes=100-199' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes 100-199/${size}`);
    expect(ranged.headers.get('content-length')).toBe('100');

    const missing = await fetch(`${cluster.url}/images/unknown`, { method: 'HEAD' });
    expect(missing.status).toBe(404);
  });

  it('serves the stored content type of each image', async () => {
    const png = bytesOf(100, 7);
    await uploadImage(cluster, 'type.png', png, 'image/png');
    const { res, body } = await get({}, 'type.png');
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(body.equals(png)).toBe(true);
  });
});
