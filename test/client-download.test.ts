// Downloads through the client: byte-identical and verified, atomic (no partial or temp file is
// ever left), IMAGE_NOT_FOUND for a missing name, and a mismatching hash refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { createTesseraClient, Sha256Verifier, TesseraClientError, type TesseraClient } from '../src/client/index.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let cluster: TestCluster;
let dir: string;
let client: TesseraClient;
const bytes = randomBytes(9 * 64 * 1024 + 999);

beforeAll(async () => {
  [cluster, dir] = await Promise.all([startCluster(), mkdtemp(join(tmpdir(), 'tessera-client-download-'))]);
  client = createTesseraClient({ url: cluster.url, stateDir: false });
  await client.upload(Readable.from([bytes]), { name: 'photos/cat.webp', size: bytes.length });
});
afterAll(async () => {
  client?.close();
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('download', () => {
  it('writes the image byte-identical, reports progress and leaves no temporary file', async () => {
    const out = join(dir, 'cat.webp');
    let last = 0;
    const result = await client.download('photos/cat.webp', out, { onProgress: (p) => (last = p.bytesDone) });
    expect(result).toMatchObject({
      name: 'photos/cat.webp',
      size: bytes.length,
      sha256: sha256(bytes),
      contentType: 'image/webp',
      path: out,
    });
    expect(last).toBe(bytes.length);
    expect((await readFile(out)).equals(bytes)).toBe(true);
    expect(await readdir(dir)).toEqual(['cat.webp']);
  });

  it('streams into a writable with downloadTo', async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) });
    const result = await client.downloadTo('photos/cat.webp', sink);
    expect(result.sha256).toBe(sha256(bytes));
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('a missing image fails with IMAGE_NOT_FOUND and creates nothing', async () => {
    const out = join(dir, 'missing.png');
    const err = await client.download('no/such.png', out).catch((e) => e);
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('IMAGE_NOT_FOUND');
    expect(await readdir(dir)).not.toContain('missing.png');
  });
});

describe('verification', () => {
  const run = (data: Buffer, expected: ConstructorParameters<typeof Sha256Verifier>[0]) =>
    pipeline(Readable.from([data.subarray(0, 10), data.subarray(10)]), new Sha256Verifier(expected), new PassThrough().resume());

  it('passes bytes that hash and count as announced', async () => {
    const data = randomBytes(1000);
    const verifier = new Sha256Verifier({ sha256: sha256(data), size: 1000 });
    await pipeline(Readable.from([data]), verifier, new PassThrough().resume());
    expect(verifier.sha256).toBe(sha256(data));
  });

  it('fails on another hash with CHECKSUM_MISMATCH, on another size with SIZE_MISMATCH', async () => {
    const data = randomBytes(1000);
    await expect(run(data, { sha256: sha256(Buffer.from('other')) })).rejects.toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    await expect(run(data, { size: 999 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(run(data, { size: 1001 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
  });

  it('a body that does not match its ETag is refused: the target keeps its old content, no temp file stays', async () => {
    // A coordinator stand-in that serves bytes under the ETag of other bytes.
    const body = randomBytes(5000);
    const server = http.createServer((_req, res) =>
      res.writeHead(200, { etag: `"${sha256(Buffer.from('not the body'))}"`, 'content-length': body.length }).end(body),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const fake = createTesseraClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stateDir: false });
    const sub = await mkdtemp(join(dir, 'etag-'));
    const out = join(sub, 'x.png');
    await writeFile(out, 'old content');
    try {
      const err = await fake.download('x.png', out).catch((e) => e);
      expect(err).toBeInstanceOf(TesseraClientError);
      expect(err.code).toBe('CHECKSUM_MISMATCH');
      expect(await readFile(out, 'utf8')).toBe('old content');
      expect(await readdir(sub)).toEqual(['x.png']);
    } finally {
      fake.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
