// PUT /images/{name}: the raw body stored as uploadImage stores it (one fragment or several), 201
// with the image as JSON; refusals answer {code, message} and store nothing.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { bytesOf, download, IMAGE, imagePath, sha256 } from './support/images.ts';
import { rawFetch } from './support/tokens.ts';
import { makePng } from './support/png.ts';

const FRAGMENT = 4096;
const MAX = 64 * 1024;

let cluster: TestCluster;
const tokens: Record<string, string> = {};
beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT, maxUploadImageSize: MAX } });
  for (const role of ['read', 'write']) {
    const { createToken } = await cluster.gql(`mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret } }`, {
      n: `put-${role}`,
      r: role,
    });
    tokens[role] = `Bearer ${createToken.secret}`;
  }
});
afterAll(() => cluster?.close());

const put = (name: string, body: Uint8Array, headers: Record<string, string> = {}, auth = tokens.write) =>
  rawFetch(imagePath(cluster, name), { method: 'PUT', body: new Uint8Array(body), headers: { authorization: auth, ...headers } });

const stored = async (name: string) => (await cluster.gql(IMAGE, { n: name })).image;

describe('PUT /images/{name}', () => {
  it('stores a one-fragment image: 201 with the image, then GET answers the same bytes', async () => {
    const bytes = bytesOf(3000, 7);
    const res = await put('cats/put one.bin', bytes, { 'content-type': 'application/x-thing' });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/images/${encodeURIComponent('cats/put one.bin')}`);
    const json = await res.json();
    expect(json).toMatchObject({ name: 'cats/put one.bin', size: 3000, sha256: sha256(bytes), contentType: 'application/x-thing' });
    // What the upload answers is the image as stored (it is not read back from the index).
    const image = await stored('cats/put one.bin');
    expect(json).toEqual({
      name: image.name,
      size: image.size,
      sha256: image.sha256,
      contentType: image.contentType,
      createdAt: image.createdAt,
    });
    const { res: got, body } = await download(cluster, 'cats/put one.bin');
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/x-thing');
    expect(body.equals(bytes)).toBe(true);
  });

  it('stores an image of several fragments, and detects an image from its bytes', async () => {
    const bytes = makePng(3 * FRAGMENT);
    const res = await put('multi.png', bytes);
    expect(res.status).toBe(201);
    const image = await stored('multi.png');
    expect(image).toMatchObject({ size: bytes.length, sha256: sha256(bytes), contentType: 'image/png' });
    expect(image.fragmentCount).toBe(Math.ceil(bytes.length / FRAGMENT));
    expect(image.fragmentCount).toBeGreaterThan(1);
    expect((await download(cluster, 'multi.png')).body.equals(bytes)).toBe(true);
  });

  it('refuses a name already taken with 409 IMAGE_ALREADY_EXISTS, keeping the stored bytes', async () => {
    const first = bytesOf(500, 1);
    expect((await put('taken', first)).status).toBe(201);
    const res = await put('taken', bytesOf(600, 2));
    expect(res.status).toBe(409);
    expect((await res.json()).code).toBe('IMAGE_ALREADY_EXISTS');
    expect((await download(cluster, 'taken')).body.equals(first)).toBe(true);
  });

  it('needs a write token: 401 without one, 403 with a read token; nothing is stored', async () => {
    const none = await rawFetch(imagePath(cluster, 'nobody'), { method: 'PUT', body: new Uint8Array(bytesOf(10)) });
    expect(none.status).toBe(401);
    expect((await none.json()).code).toBe('UNAUTHENTICATED');
    const read = await put('reader', bytesOf(10), {}, tokens.read);
    expect(read.status).toBe(403);
    expect((await read.json()).code).toBe('FORBIDDEN');
    for (const name of ['nobody', 'reader']) expect(await stored(name)).toBeNull();
  });

  it('refuses a body over --max-upload-image-size (413), an empty body and a bad name (400)', async () => {
    const big = await put('big', bytesOf(MAX + 1));
    expect(big.status).toBe(413);
    expect((await big.json()).code).toBe('PAYLOAD_TOO_LARGE');
    const empty = await put('empty', new Uint8Array(0));
    expect(empty.status).toBe(400);
    expect((await empty.json()).code).toBe('BAD_USER_INPUT');
    const bad = await rawFetch(`${cluster.url}/images/a%00b`, {
      method: 'PUT',
      body: new Uint8Array(bytesOf(10)),
      headers: { authorization: tokens.write },
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).code).toBe('BAD_USER_INPUT');
    for (const name of ['big', 'empty']) expect(await stored(name)).toBeNull();
    // The connection stays usable after a refusal.
    expect((await put('after-refusals', bytesOf(20))).status).toBe(201);
  });

  it('refuses a query string with 400, as DELETE does, storing nothing', async () => {
    const res = await rawFetch(`${imagePath(cluster, 'queried.bin')}?w=100`, {
      method: 'PUT',
      body: new Uint8Array(bytesOf(100)),
      headers: { authorization: tokens.write },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/query/) });
    expect(await stored('queried.bin')).toBeNull();
  });

  it('a client that goes away mid-body stores nothing and is not logged as a server fault', async () => {
    const errors = vi.spyOn(cluster.coordinator.app.log, 'error');
    try {
      const url = new URL(imagePath(cluster, 'aborted.bin'));
      const req = http.request(url, {
        method: 'PUT',
        headers: { authorization: tokens.write, 'content-length': String(MAX) },
      });
      req.on('error', () => {});
      req.write(Buffer.from(bytesOf(1000)));
      // Once the coordinator has read part of the body (the server-side socket is open), cut it.
      await new Promise((r) => setTimeout(r, 100));
      req.destroy();
      // The coordinator still serves; the aborted name is free.
      expect((await put('after-abort.bin', bytesOf(50))).status).toBe(201);
      expect(await stored('aborted.bin')).toBeNull();
      expect(errors).not.toHaveBeenCalled();
    } finally {
      errors.mockRestore();
    }
  });
});
