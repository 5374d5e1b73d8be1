// The client library's uploads against a real in-process cluster (64 KiB fragments): byte-identical
// round trips over both transports, streams, the one-shot path, resume after an abort, retries.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, readFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { createTesseraClient, TesseraClientError, type TesseraClient } from '../src/client/index.ts';
import { withRetry } from '../src/client/retry.ts';
import { TesseraError } from '../src/errors.ts';

const FRAGMENT = 64 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let cluster: TestCluster;
let dir: string;
let client: TesseraClient;

beforeAll(async () => {
  [cluster, dir] = await Promise.all([startCluster(), mkdtemp(join(tmpdir(), 'tessera-client-upload-'))]);
  client = createTesseraClient({ url: cluster.url, stateDir: join(dir, 'state') });
});
afterAll(async () => {
  client?.close();
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

async function fileOf(name: string, size: number) {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, bytes };
}

async function fetchBytes(name: string) {
  const res = await fetch(`${cluster.url}/images/${encodeURIComponent(name)}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('upload', () => {
  it.each([
    { transport: 'raw' as const, hashFirst: false },
    { transport: 'multipart' as const, hashFirst: true },
    { transport: 'base64' as const, hashFirst: false },
  ])('a multi-fragment file arrives byte-identical ($transport, hashFirst $hashFirst)', async ({ transport, hashFirst }) => {
    const { path, bytes } = await fileOf(`multi-${transport}.png`, 17 * FRAGMENT + 123);
    const progress: number[] = [];
    const result = await client.upload(path, {
      transport,
      hashFirst,
      parallel: 3,
      onProgress: (p) => p.phase === 'uploading' && progress.push(p.bytesDone),
    });
    expect(result.image).toMatchObject({
      name: `multi-${transport}.png`,
      size: bytes.length,
      sha256: sha256(bytes),
      contentType: 'image/png',
      fragmentCount: 18,
    });
    expect(result).toMatchObject({ resumed: false, fragmentCount: 18, sentFragments: 18, skippedFragments: 0 });
    expect(progress.at(-1)).toBe(bytes.length);
    expect((await fetchBytes(result.image.name)).equals(bytes)).toBe(true);
  });

  it('hashes while sending: a fragment is stored before the file is read whole, and completeUpload verifies the hash', async () => {
    const { path, bytes } = await fileOf('hash-while-sending.png', 40 * FRAGMENT + 5);
    // Bytes read through any FileHandle of this process, by the time the first fragment is stored.
    const probe = await open(path, 'r');
    const fileHandle = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    let bytesRead = 0;
    const realRead = fileHandle.read;
    const readSpy = vi.spyOn(fileHandle, 'read').mockImplementation(async function (this: unknown, ...args: unknown[]) {
      const result = await realRead.apply(this, args);
      bytesRead += result.bytesRead;
      return result;
    });
    const complete = vi.spyOn(cluster.app.uploads, 'complete');
    let readAtFirstStored: number | undefined;
    try {
      const result = await client.upload(path, {
        parallel: 2,
        onProgress: (p) => {
          if (p.phase === 'uploading' && p.index !== undefined) readAtFirstStored ??= bytesRead;
        },
      });
      expect(result.image.sha256).toBe(sha256(bytes));
      // Two workers, one fragment in flight each, reading ahead at most one more each.
      expect(readAtFirstStored).toBeLessThanOrEqual(4 * FRAGMENT);
      // The file was read once, not once to hash and once to send.
      expect(bytesRead).toBe(bytes.length);
      expect(complete).toHaveBeenCalledWith(result.uploadId, sha256(bytes));
    } finally {
      readSpy.mockRestore();
      complete.mockRestore();
    }
  });

  it('a stream of odd-sized chunks, with name and size, arrives byte-identical', async () => {
    const bytes = randomBytes(5 * FRAGMENT + 7);
    const chunks = [];
    for (let at = 0; at < bytes.length; at += 10_007) chunks.push(bytes.subarray(at, at + 10_007));
    const result = await client.upload(Readable.from(chunks), { name: 'streamed.jpg', size: bytes.length });
    expect(result.image).toMatchObject({ size: bytes.length, sha256: sha256(bytes), contentType: 'image/jpeg' });
    expect((await fetchBytes('streamed.jpg')).equals(bytes)).toBe(true);
  });

  it('a stream shorter than its announced size fails with BAD_USER_INPUT', async () => {
    const err = await client.upload(Readable.from([randomBytes(1000)]), { name: 'short', size: 3 * FRAGMENT }).catch((e) => e);
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('BAD_USER_INPUT');
  });

  it('an image of one fragment goes in one uploadImage request', async () => {
    const { path, bytes } = await fileOf('small.gif', 1000);
    const result = await client.upload(path);
    expect(result).toMatchObject({ uploadId: null, fragmentCount: 1, sentFragments: 1 });
    expect(result.image).toMatchObject({ size: 1000, sha256: sha256(bytes), contentType: 'image/gif' });
    expect((await fetchBytes('small.gif')).equals(bytes)).toBe(true);
  });

  it('server errors arrive as TesseraClientError with the contract code', async () => {
    const { path } = await fileOf('taken.png', 2 * FRAGMENT);
    await client.upload(path);
    const err = await client.upload(path, { resume: false }).catch((e) => e);
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('IMAGE_ALREADY_EXISTS');
    const bad = await client.upload(path, { name: '..' }).catch((e) => e);
    expect(bad.code).toBe('BAD_USER_INPUT');
  });

  it('an aborted upload resumes: the second run sends only the fragments the cluster lacks', async () => {
    const { path, bytes } = await fileOf('resume.bmp', 40 * FRAGMENT + 5);
    const controller = new AbortController();
    let uploadId: string | undefined;
    let sentBeforeAbort = 0;
    const err = await client
      .upload(path, {
        parallel: 2,
        signal: controller.signal,
        onProgress: (p) => {
          uploadId = p.uploadId;
          sentBeforeAbort = p.sentFragments;
          if (p.sentFragments >= 6) controller.abort();
        },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('ABORTED');
    expect(err.uploadId).toBe(uploadId);
    expect(sentBeforeAbort).toBeGreaterThanOrEqual(6);

    // The upload stays open; fragments in flight at the abort may or may not have landed.
    const { upload } = await cluster.gql(`query($id: ID!){ upload(id: $id){ receivedFragments fragmentCount } }`, { id: uploadId });
    const stored: number[] = upload.receivedFragments;
    expect(stored.length).toBeGreaterThanOrEqual(6);
    expect(stored.length).toBeLessThan(41);

    const sentIndexes: number[] = [];
    const result = await client.upload(path, { onProgress: (p) => p.index !== undefined && sentIndexes.push(p.index) });
    expect(result).toMatchObject({ uploadId, resumed: true, fragmentCount: 41 });
    // An aborted request whose body had arrived may still land after the query above: the
    // resume may skip more than `stored`, never fewer, and never sends a stored fragment again.
    expect(result.skippedFragments).toBeGreaterThanOrEqual(stored.length);
    expect(result.sentFragments).toBe(41 - result.skippedFragments);
    expect(new Set(sentIndexes).size).toBe(result.sentFragments);
    expect(sentIndexes.filter((i) => stored.includes(i))).toEqual([]);
    expect(result.image.sha256).toBe(sha256(bytes));
    expect((await fetchBytes('resume.bmp')).equals(bytes)).toBe(true);

    // Completed: the ledger forgets it, so a third run is a new upload (and the name is taken).
    const ledger = JSON.parse(await readFile(join(dir, 'state', 'uploads.json'), 'utf8'));
    expect(ledger.uploads.some((u: { uploadId: string }) => u.uploadId === uploadId)).toBe(false);
  });

  it('a changed file does not resume the old upload: that one is dropped and the name freed', async () => {
    const { path } = await fileOf('changed.png', 20 * FRAGMENT);
    const controller = new AbortController();
    const err = await client
      .upload(path, { parallel: 1, signal: controller.signal, onProgress: (p) => p.sentFragments >= 2 && controller.abort() })
      .catch((e) => e);
    expect(err.code).toBe('ABORTED');
    const bytes = randomBytes(20 * FRAGMENT);
    await writeFile(path, bytes);
    await utimes(path, new Date(), new Date(Date.now() + 5000)); // a distinct mtime even on coarse clocks
    const result = await client.upload(path);
    expect(result).toMatchObject({ resumed: false, sentFragments: 20 });
    expect((await client.graphql<{ upload: unknown }>(`query($id: ID!){ upload(id: $id){ id } }`, { id: err.uploadId })).upload).toBeNull();
    expect((await fetchBytes('changed.png')).equals(bytes)).toBe(true);
  });
  it('resume: false aborts the earlier upload of the file and starts over', async () => {
    const { path, bytes } = await fileOf('restart.png', 12 * FRAGMENT);
    const controller = new AbortController();
    const err = await client
      .upload(path, { parallel: 1, signal: controller.signal, onProgress: (p) => p.sentFragments >= 2 && controller.abort() })
      .catch((e) => e);
    expect(err.code).toBe('ABORTED');
    const result = await client.upload(path, { resume: false });
    expect(result).toMatchObject({ resumed: false, sentFragments: 12, skippedFragments: 0 });
    expect(result.uploadId).not.toBe(err.uploadId);
    expect((await client.graphql<{ upload: unknown }>(`query($id: ID!){ upload(id: $id){ id } }`, { id: err.uploadId })).upload).toBeNull();
    expect((await fetchBytes('restart.png')).equals(bytes)).toBe(true);
  });
});

describe('transient failures', () => {
  it.each(['raw', 'multipart'] as const)(
    'a reset connection and INSUFFICIENT_DATANODES on fragments are retried; the upload completes intact (%s)',
    async (transport) => {
      // A proxy that fails the 2nd fragment request by cutting the connection and answers the 4th
      // with INSUFFICIENT_DATANODES (as the raw route or GraphQL answers it), forwarding everything
      // else to the coordinator.
      let fragments = 0;
      const proxy = http.createServer((req, res) => {
        const raw = req.method === 'PUT' && (req.url ?? '').startsWith('/uploads/');
        if (raw || (req.headers['content-type'] ?? '').startsWith('multipart/')) {
          fragments++;
          if (fragments === 2) return void req.socket.destroy();
          if (fragments === 4) {
            req.resume();
            const message = 'Needs 2 live datanodes; 1 is live.';
            return void res
              .writeHead(raw ? 503 : 200, { 'content-type': 'application/json' })
              .end(
                JSON.stringify(
                  raw
                    ? { code: 'INSUFFICIENT_DATANODES', message }
                    : { errors: [{ message, extensions: { code: 'INSUFFICIENT_DATANODES' } }] },
                ),
              );
          }
        }
        forwardToCluster(req, res);
      });
      const flaky = await clientThrough(proxy);
      try {
        const { path, bytes } = await fileOf(`flaky-${transport}.png`, 6 * FRAGMENT);
        const result = await flaky.upload(path, { parallel: 1, transport });
        expect(result).toMatchObject({ sentFragments: 6, retries: 2 });
        expect(fragments).toBe(8);
        expect((await fetchBytes(`flaky-${transport}.png`)).equals(bytes)).toBe(true);
      } finally {
        await closeBoth(flaky, proxy);
      }
    },
  );
});

describe('fragment transport', () => {
  /** A proxy to the coordinator that counts fragment requests; `refuseRaw` answers raw PUTs as a coordinator without the route. */
  function countingProxy(refuseRaw: boolean) {
    const seen = { raw: 0, multipart: 0 };
    const server = http.createServer((req, res) => {
      const raw = req.method === 'PUT' && (req.url ?? '').startsWith('/uploads/');
      if (raw) seen.raw++;
      if ((req.headers['content-type'] ?? '').startsWith('multipart/')) seen.multipart++;
      if (raw && refuseRaw) {
        req.resume();
        // What Yoga answers off /graphql (an older coordinator).
        return void res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"code":"NOT_FOUND","message":"Nothing is served at this path."}');
      }
      forwardToCluster(req, res);
    });
    return { server, seen };
  }

  it('sends every fragment as a raw PUT /uploads/{id}/fragments/{index} by default, none as multipart', async () => {
    const { server, seen } = countingProxy(false);
    const through = await clientThrough(server);
    try {
      const { path, bytes } = await fileOf('raw-default.png', 9 * FRAGMENT + 1);
      const result = await through.upload(path, { parallel: 3 });
      expect(result.image).toMatchObject({ size: bytes.length, sha256: sha256(bytes), fragmentCount: 10 });
      expect(seen).toEqual({ raw: 10, multipart: 0 });
      expect((await fetchBytes('raw-default.png')).equals(bytes)).toBe(true);
    } finally {
      await closeBoth(through, server);
    }
  });

  it('asks the cluster for its fragment size only, not for the figures that count over the whole index', async () => {
    const queries: string[] = [];
    const server = http.createServer((req, res) => {
      if (req.method !== 'POST' || !(req.headers['content-type'] ?? '').startsWith('application/json')) return forwardToCluster(req, res);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        queries.push((JSON.parse(body.toString('utf8')) as { query: string }).query);
        forwardToCluster(req, res, body);
      });
    });
    const through = await clientThrough(server);
    try {
      const { path, bytes } = await fileOf('fragment-size-only.png', 3 * FRAGMENT + 1);
      expect((await through.upload(path)).image.sha256).toBe(sha256(bytes));
      const asked = queries.filter((q) => /\bcluster\b/.test(q));
      expect(asked).toHaveLength(1);
      expect(asked[0]).toMatch(/\{\s*cluster\s*\{\s*fragmentSize\s*\}\s*\}/);
    } finally {
      await closeBoth(through, server);
    }
  });

  it('on a coordinator without the raw route, moves to multipart after the first refusal and completes intact', async () => {
    const { server, seen } = countingProxy(true);
    const through = await clientThrough(server);
    try {
      const { path, bytes } = await fileOf('raw-fallback.png', 9 * FRAGMENT + 1);
      const result = await through.upload(path, { parallel: 1 });
      expect(result).toMatchObject({ sentFragments: 10, retries: 0 });
      expect(result.image.sha256).toBe(sha256(bytes));
      expect(seen).toEqual({ raw: 1, multipart: 10 });
      expect((await fetchBytes('raw-fallback.png')).equals(bytes)).toBe(true);
    } finally {
      await closeBoth(through, server);
    }
  });

  it('a raw fragment refused on purpose is not retried: the error arrives with its code', async () => {
    const { path } = await fileOf('raw-refused.png', 3 * FRAGMENT);
    const { server } = countingProxy(false);
    // The coordinator refuses the fragment's hash (as when the bytes were corrupted on the way).
    const put = vi.spyOn(cluster.app.uploads, 'putFragment').mockRejectedValueOnce(new TesseraError('CHECKSUM_MISMATCH', 'corrupted'));
    const through = await clientThrough(server);
    try {
      const err = await through.upload(path, { parallel: 1 }).catch((e) => e);
      expect(err).toBeInstanceOf(TesseraClientError);
      expect(err).toMatchObject({ code: 'CHECKSUM_MISMATCH', status: 400, message: 'corrupted' });
      expect(put).toHaveBeenCalledTimes(1);
    } finally {
      put.mockRestore();
      await closeBoth(through, server);
    }
  });
});

describe('a mutation that went through but answered METADATA_UNAVAILABLE', () => {
  // A proxy that passes the first uploadImage and completeUpload to the coordinator, which stores
  // the image, and answers them METADATA_UNAVAILABLE (as when the database committed but the
  // connection dropped before its answer): the client's retry is refused (IMAGE_ALREADY_EXISTS,
  // UPLOAD_NOT_FOUND) and must find the image stored rather than report a failure.
  it.each([
    { what: 'uploadImage (one fragment)', size: 1000, field: 'uploadImage' },
    { what: 'completeUpload', size: 3 * FRAGMENT, field: 'completeUpload' },
  ])('$what: the upload succeeds with the stored image', async ({ size, field }) => {
    let swallowed = 0;
    const target = new URL(cluster.url);
    const proxy = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const lose = swallowed === 0 && body.includes(`${field}(`);
      const up = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          if (!lose) {
            res.writeHead(r.statusCode!, r.headers);
            return void r.pipe(res);
          }
          swallowed++;
          r.resume();
          r.on('end', () =>
            res.writeHead(503, { 'content-type': 'application/json' }).end(
              JSON.stringify({
                errors: [{ message: 'The metadata database did not answer.', extensions: { code: 'METADATA_UNAVAILABLE' } }],
              }),
            ),
          );
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
    const flaky = await clientThrough(proxy);
    try {
      const { path, bytes } = await fileOf(`committed-${field}.png`, size);
      const result = await flaky.upload(path);
      expect(swallowed).toBe(1);
      expect(result.image).toMatchObject({ name: `committed-${field}.png`, sha256: sha256(bytes) });
      expect((await fetchBytes(result.image.name)).equals(bytes)).toBe(true);
    } finally {
      await closeBoth(flaky, proxy);
    }
  });
});

describe('retry policy', () => {
  const fast = { retries: 3, baseDelayMs: 1, maxDelayMs: 2 };
  it('retries transient failures and gives up on input errors at once', async () => {
    let calls = 0;
    const value = await withRetry(
      async () => {
        if (++calls < 3) throw new TesseraClientError('INSUFFICIENT_DATANODES', 'not now');
        return 'ok';
      },
      { policy: fast },
    );
    expect([value, calls]).toEqual(['ok', 3]);

    calls = 0;
    const err = await withRetry(
      async () => {
        calls++;
        throw new TesseraClientError('BAD_USER_INPUT', 'never');
      },
      { policy: fast },
    ).catch((e) => e);
    expect([err.code, calls]).toEqual(['BAD_USER_INPUT', 1]);

    calls = 0;
    const network = await withRetry(
      async () => {
        calls++;
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
      { policy: fast },
    ).catch((e) => e);
    expect([network.code, calls]).toEqual(['NETWORK_ERROR', 4]);
  });
});

/** Passes a proxy's request on to the coordinator and its answer back; `body`: its body, when the proxy has read it already. */
function forwardToCluster(req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer) {
  const target = new URL(cluster.url);
  const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode!, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  if (body) up.end(body);
  else req.pipe(up);
}

/** A client with fast retries that reaches the cluster only through `proxy` (started here). */
async function clientThrough(proxy: http.Server) {
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return createTesseraClient({
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    stateDir: false,
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
  });
}

async function closeBoth(client: { close(): void }, proxy: http.Server) {
  client.close();
  proxy.closeAllConnections();
  await new Promise((r) => proxy.close(r));
}
