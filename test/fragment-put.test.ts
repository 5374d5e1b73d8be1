// PUT /uploads/{id}/fragments/{index}: a chunked upload's fragment as the raw body, stored as
// uploadFragment stores it (200 with the receipt as JSON); refusals answer {code, message} and
// store nothing; the same token rule as uploadFragment; no other method, not even a preflight.
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { handleFragmentUpload } from '../src/http/fragment-upload-route.ts';
import { createBodyBudget, MULTIPART_BUDGET_BYTES } from '../src/memory-budget.ts';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { ABORT, BEGIN, beginUpload, bytesOf, completeUpload, download, sendFragment, sha256, sliceOf, UPLOAD } from './support/images.ts';
import { rawFetch } from './support/tokens.ts';
import { onPostgres } from './support/test-metadata.ts';

const FRAGMENT = 4096;

let cluster: TestCluster;
const tokens: Record<string, string> = {};
beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT } });
  for (const role of ['read', 'write']) {
    const { createToken } = await cluster.gql(`mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret } }`, {
      n: `fragment-put-${role}`,
      r: role,
    });
    tokens[role] = `Bearer ${createToken.secret}`;
  }
});
afterAll(() => cluster?.close());
// A server of a test's own (closed after it).
let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

const fragmentUrl = (uploadId: string, index: number | string) =>
  `${cluster.url}/uploads/${encodeURIComponent(uploadId)}/fragments/${index}`;

const put = (uploadId: string, index: number | string, body: Uint8Array, headers: Record<string, string> = {}, auth = tokens.write) =>
  rawFetch(fragmentUrl(uploadId, index), { method: 'PUT', body: new Uint8Array(body), headers: { authorization: auth, ...headers } });

const received = async (uploadId: string): Promise<number[]> => (await cluster.gql(UPLOAD, { u: uploadId })).upload.receivedFragments;

/** Resolves once the raw route has read upload `uploadId`'s row (through the spied `openUpload`), before its body. */
async function rowRead(openUpload: MockInstance, uploadId: string) {
  await vi.waitFor(() => expect(openUpload.mock.calls.some(([id]) => id === uploadId)).toBe(true), { timeout: 10_000, interval: 5 });
  await openUpload.mock.results[openUpload.mock.calls.findIndex(([id]) => id === uploadId)].value;
}

const imageIdOf = async (uploadId: string) => (await cluster.app.indexSql('SELECT id FROM images WHERE upload_id = ?', uploadId))[0]?.id;

async function opened(name: string, size: number) {
  const bytes = Buffer.from(bytesOf(size, size % 251));
  const session = await beginUpload(cluster, { name, size });
  return { bytes, session, slice: (i: number) => sliceOf(bytes, FRAGMENT, i) };
}

describe('PUT /uploads/{id}/fragments/{index}', () => {
  it('stores each fragment (200 with its receipt); completeUpload then makes the image, byte-identical', async () => {
    const { bytes, session, slice } = await opened('raw/three.bin', 2 * FRAGMENT + 100);
    for (const i of [2, 0, 1]) {
      const res = await put(session.id, i, slice(i), { 'x-content-sha256': sha256(slice(i)) });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const receipt = await res.json();
      expect(receipt).toEqual({ index: i, size: slice(i).length, sha256: sha256(slice(i)), replicas: expect.any(Array) });
      expect(receipt.replicas).toHaveLength(2);
    }
    expect((await received(session.id)).sort()).toEqual([0, 1, 2]);
    const image = await completeUpload(cluster, session.id);
    expect(image).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
    expect((await download(cluster, 'raw/three.bin')).body.equals(bytes)).toBe(true);
  });

  it('without X-Content-SHA256 the coordinator hashes the bytes itself; a fragment sent again replaces it', async () => {
    const { bytes, session, slice } = await opened('raw/nohash.bin', FRAGMENT + 1);
    // Fragment 0 first as other bytes (GraphQL), then again over the raw route.
    await sendFragment(cluster, session.id, 0, bytesOf(FRAGMENT, 99));
    for (const i of [0, 1]) expect((await (await put(session.id, i, slice(i))).json()).sha256).toBe(sha256(slice(i)));
    expect((await completeUpload(cluster, session.id)).sha256).toBe(sha256(bytes));
  });

  it('refuses bytes that do not match X-Content-SHA256 (400 CHECKSUM_MISMATCH) and a malformed one (400), storing nothing', async () => {
    const { session, slice } = await opened('raw/mismatch.bin', 2 * FRAGMENT);
    const wrong = await put(session.id, 0, slice(0), { 'x-content-sha256': sha256(slice(1)) });
    expect(wrong.status).toBe(400);
    expect((await wrong.json()).code).toBe('CHECKSUM_MISMATCH');
    const malformed = await put(session.id, 0, slice(0), { 'x-content-sha256': 'ABC' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/x-content-sha256/) });
    expect(await received(session.id)).toEqual([]);
  });

  it('refuses a wrong size or index (400 INVALID_FRAGMENT) and a body without Content-Length (411), storing nothing', async () => {
    const { session, slice } = await opened('raw/sizes.bin', 2 * FRAGMENT);
    const cases = [
      await put(session.id, 0, slice(0).subarray(1)), // short, declared
      await put(session.id, 0, Buffer.concat([slice(0), Buffer.alloc(1)])), // long, declared
      await put(session.id, 2, slice(1)), // past the last fragment
    ];
    for (const res of cases) {
      expect(res.status).toBe(400);
      expect((await res.json()).code).toBe('INVALID_FRAGMENT');
    }
    // A chunked body (no Content-Length), even of the right size, is refused unread.
    const chunked = await chunkedPut(fragmentUrl(session.id, 0), slice(0));
    expect(chunked.status).toBe(411);
    expect(JSON.parse(chunked.body).code).toBe('LENGTH_REQUIRED');
    expect(await received(session.id)).toEqual([]);
    // The connection stays usable after a refusal.
    expect((await put(session.id, 0, slice(0))).status).toBe(200);
  });

  it('answers 404 UPLOAD_NOT_FOUND for an unknown or completed upload, 400 for a malformed index or a query string', async () => {
    const unknown = await put('no-such-upload', 0, bytesOf(10));
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).code).toBe('UPLOAD_NOT_FOUND');
    const { session, slice } = await opened('raw/done.bin', 10);
    expect((await put(session.id, 0, slice(0))).status).toBe(200);
    await completeUpload(cluster, session.id);
    const after = await put(session.id, 0, slice(0));
    expect(after.status).toBe(404);
    expect((await after.json()).code).toBe('UPLOAD_NOT_FOUND');
    for (const index of ['x', '-1', '01', '1.5']) {
      const res = await put(session.id, index, slice(0));
      expect(res.status, index).toBe(400);
      expect((await res.json()).code, index).toBe('BAD_USER_INPUT');
    }
    const queried = await rawFetch(`${fragmentUrl(session.id, 0)}?sha256=${sha256(slice(0))}`, {
      method: 'PUT',
      body: new Uint8Array(slice(0)),
      headers: { authorization: tokens.write },
    });
    expect(queried.status).toBe(400);
    expect(await queried.json()).toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/query/) });
  });

  it('needs a write token, as uploadFragment: 401 without one, 403 with a read token; nothing is stored', async () => {
    const { session, slice } = await opened('raw/auth.bin', FRAGMENT);
    const none = await rawFetch(fragmentUrl(session.id, 0), { method: 'PUT', body: new Uint8Array(slice(0)) });
    expect(none.status).toBe(401);
    expect((await none.json()).code).toBe('UNAUTHENTICATED');
    const read = await put(session.id, 0, slice(0), {}, tokens.read);
    expect(read.status).toBe(403);
    expect((await read.json()).code).toBe('FORBIDDEN');
    expect(await received(session.id)).toEqual([]);
  });

  it('answers only PUT: any other method, OPTIONS (a preflight) included, is 405 with Allow and no CORS header', async () => {
    const { session, slice } = await opened('raw/methods.bin', FRAGMENT);
    for (const method of ['GET', 'POST', 'DELETE', 'OPTIONS']) {
      const res = await rawFetch(fragmentUrl(session.id, 0), {
        method,
        headers: { authorization: tokens.write, origin: 'https://elsewhere.example', 'access-control-request-method': 'PUT' },
        ...(method === 'POST' ? { body: new Uint8Array(slice(0)) } : {}),
      });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow'), method).toBe('PUT');
      expect(
        [...res.headers.keys()].filter((h) => h.startsWith('access-control-')),
        method,
      ).toEqual([]);
      expect((await res.json()).code, method).toBe('METHOD_NOT_ALLOWED');
    }
    const elsewhere = await put(session.id, '0/more', slice(0));
    expect(elsewhere.status).toBe(404);
    expect((await elsewhere.json()).code).toBe('NOT_FOUND');
    expect(await received(session.id)).toEqual([]);
  });

  it('a client that goes away mid-body stores nothing and is not a server fault (the handler settles, its body charge released)', async () => {
    const { session, slice } = await opened('raw/aborted.bin', FRAGMENT);
    // The route's handler on the coordinator's own services, on a server of the test's: its
    // promise is the one the coordinator's server turns into a logged fault should it reject.
    const budget = createBodyBudget(MULTIPART_BUDGET_BYTES);
    const deps = { auth: cluster.app.auth, uploads: cluster.app.uploads, budget, idleTimeoutMs: 30_000 };
    let handled!: Promise<void>;
    let arrived!: () => void;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const own = http.createServer((req, res) => {
      handled = handleFragmentUpload(req, res, (req.url ?? '').split('?')[0], deps);
      arrived();
    });
    server = own;
    own.listen(0, '127.0.0.1');
    await once(own, 'listening');
    const { port } = own.address() as AddressInfo;
    const openUpload = vi.spyOn(cluster.app.uploads, 'openUpload');
    try {
      const req = http.request(`http://127.0.0.1:${port}/uploads/${encodeURIComponent(session.id)}/fragments/0`, {
        method: 'PUT',
        headers: { authorization: tokens.write, 'content-length': String(FRAGMENT) },
      });
      req.on('error', () => {});
      req.write(slice(0).subarray(0, 1000));
      await reached;
      await rowRead(openUpload, session.id); // the body is being read
      req.destroy();
      await expect(handled).resolves.toBeUndefined();
      expect(budget.used).toBe(0);
    } finally {
      openUpload.mockRestore();
    }
    expect(await received(session.id)).toEqual([]);
    expect((await put(session.id, 0, slice(0))).status).toBe(200); // the upload still takes it
    expect(await received(session.id)).toEqual([0]);
  });

  it('an upload aborted while a fragment is arriving: 404 UPLOAD_NOT_FOUND once the body is in, nothing recorded, no copy kept', async () => {
    const { session, slice } = await opened('raw/aborted-meanwhile.bin', FRAGMENT);
    const openUpload = vi.spyOn(cluster.app.uploads, 'openUpload');
    const write = vi.spyOn(cluster.app.replicas, 'write');
    try {
      let sendRest!: () => void;
      const answer = streamedPut(
        fragmentUrl(session.id, 0),
        { authorization: tokens.write, 'content-length': String(FRAGMENT), 'x-content-sha256': sha256(slice(0)) },
        (req) => {
          req.write(slice(0).subarray(0, 1000));
          sendRest = () => req.end(slice(0).subarray(1000));
        },
      );
      // The upload is read (open) before the body: abort it once it was, then send the rest.
      await rowRead(openUpload, session.id);
      await cluster.gql(ABORT, { u: session.id });
      sendRest();
      const { status, body } = await answer;
      expect(status).toBe(404);
      expect(JSON.parse(body).code).toBe('UPLOAD_NOT_FOUND');
      // The fragment was written to the datanodes before its upload was found gone.
      expect(write).toHaveBeenCalledTimes(1);
      expect(write.mock.calls[0][2]).toBe(sha256(slice(0)));
      await write.mock.results[0].value;
    } finally {
      openUpload.mockRestore();
      write.mockRestore();
    }
    expect((await cluster.gql(UPLOAD, { u: session.id })).upload).toBeNull();
    // What reached the datanodes is queued for deletion and deleted: no file is left uncounted.
    await vi.waitFor(
      async () => {
        const { cluster: c } = await cluster.gql(`{ cluster { pendingReplicaDeletions } }`);
        expect(c.pendingReplicaDeletions).toBe(0);
      },
      { timeout: 10_000, interval: 50 },
    );
  });

  it('a fragment of an upload aborted while it arrives is not recorded in the upload begun next, which SQLite gives the same id', async () => {
    const first = await opened('raw/reused-first.bin', FRAGMENT);
    const openUpload = vi.spyOn(cluster.app.uploads, 'openUpload');
    const write = vi.spyOn(cluster.app.replicas, 'write');
    try {
      let sendRest!: () => void;
      const answer = streamedPut(
        fragmentUrl(first.session.id, 0),
        { authorization: tokens.write, 'content-length': String(FRAGMENT), 'x-content-sha256': sha256(first.slice(0)) },
        (req) => {
          req.write(first.slice(0).subarray(0, 1000));
          sendRest = () => req.end(first.slice(0).subarray(1000));
        },
      );
      await rowRead(openUpload, first.session.id);
      const firstId = await imageIdOf(first.session.id);
      await cluster.gql(ABORT, { u: first.session.id });
      const second = await opened('raw/reused-second.bin', FRAGMENT - 7);
      // The aborted upload was the newest row: SQLite reuses its id (PostgreSQL's sequence does not).
      if (!onPostgres()) expect(await imageIdOf(second.session.id)).toBe(firstId);
      sendRest();
      const { status, body } = await answer;
      expect(write).toHaveBeenCalled(); // its bytes did reach the datanodes
      expect(status).toBe(404);
      expect(JSON.parse(body).code).toBe('UPLOAD_NOT_FOUND');
      expect(await received(second.session.id)).toEqual([]);
      expect((await put(second.session.id, 0, second.slice(0))).status).toBe(200);
      expect(await completeUpload(cluster, second.session.id)).toMatchObject({ size: FRAGMENT - 7, sha256: sha256(second.bytes) });
      expect((await download(cluster, 'raw/reused-second.bin')).body.equals(second.bytes)).toBe(true);
    } finally {
      openUpload.mockRestore();
      write.mockRestore();
    }
  });
});

describe('PUT /uploads/{id}/fragments/{index}: the limits of uploadFragment', () => {
  let limited: TestCluster;
  beforeAll(async () => {
    limited = await startCluster({ datanodes: 2, config: { fragmentSize: FRAGMENT, rateLimitPerSec: 5, bodyTimeoutSec: 1 } });
  });
  afterAll(() => limited?.close());

  const writeToken = async (name: string) => {
    const { createToken } = await limited.gql(`mutation($n: String!) { createToken(name: $n, role: write) { secret } }`, { n: name });
    return `Bearer ${createToken.secret}`;
  };

  it("counts against the token's request rate: 429 RATE_LIMITED with Retry-After past it", async () => {
    const session = (await limited.gql(BEGIN, { i: { name: 'limits/rate.bin', size: 10 } })).beginUpload;
    const auth = await writeToken('rate');
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        rawFetch(`${limited.url}/uploads/${session.id}/fragments/0`, {
          method: 'PUT',
          body: new Uint8Array(bytesOf(10)),
          headers: { authorization: auth },
        }),
      ),
    );
    const refused = answers.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.some((r) => r.status === 200)).toBe(true);
    expect(refused[0].headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await refused[0].json()).code).toBe('RATE_LIMITED');
  });

  it('a body that stops arriving is answered 408 REQUEST_TIMEOUT after --body-timeout; nothing is stored', async () => {
    const session = (await limited.gql(BEGIN, { i: { name: 'limits/stall.bin', size: FRAGMENT } })).beginUpload;
    const auth = await writeToken('stall');
    const answer = await streamedPut(
      `${limited.url}/uploads/${session.id}/fragments/0`,
      { authorization: auth, 'content-length': String(FRAGMENT) },
      (req) => req.write(Buffer.alloc(100)), // and nothing more
    );
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body).code).toBe('REQUEST_TIMEOUT');
    expect((await limited.gql(UPLOAD, { u: session.id })).upload.receivedFragments).toEqual([]);
  });
});

/** A PUT whose body `send` writes (and may end) as it likes: status and body text. */
function streamedPut(
  url: string,
  headers: Record<string, string>,
  send: (req: http.ClientRequest, fail: (err: unknown) => void) => void,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(url), { method: 'PUT', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    send(req, reject);
  });
}

/** A PUT with a chunked body (no Content-Length): status and body text. */
function chunkedPut(url: string, body: Buffer): Promise<{ status: number; body: string }> {
  return streamedPut(url, { authorization: tokens.write }, (req) => {
    req.write(body.subarray(0, 100));
    req.end(body.subarray(100));
  });
}
