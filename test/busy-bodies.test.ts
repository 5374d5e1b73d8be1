// The shared budget for request bodies (64 MiB) at its limit, on a real coordinator: a body it
// refuses while the body is still arriving gets its answer (503 SERVER_BUSY, Retry-After,
// Connection: close) rather than a reset connection, on each route that reads a body; and a
// multipart upload keeps its charge while its parsed file is being stored, so a second one
// that would pass the budget meanwhile is refused.
import type http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { beginUpload, UPLOAD_IMAGE } from './support/images.ts';
import { codeOf } from './support/graphql.ts';
import { partialBody, type RawAnswer } from './support/partial-body.ts';

const MiB = 1024 * 1024;
/** Each body declares 50 MiB and stops at 40: two of them pass the 64 MiB budget, one alone does not. */
const DECLARED = 50 * MiB;
const SENT = 40 * MiB;

let cluster: TestCluster;
beforeAll(async () => {
  // 50 MiB fragments, so that a fragment PUT is as large as the image PUTs; two datanodes (RF 2).
  cluster = await startCluster({ datanodes: 2, config: { fragmentSize: DECLARED } });
});
afterAll(() => cluster?.close());

const headOf = (requestLine: string, headers: Record<string, string>) =>
  [
    requestLine,
    `Host: ${new URL(cluster.url).host}`,
    `Authorization: Bearer ${cluster.adminToken}`,
    `Content-Length: ${DECLARED}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');

const BOUNDARY = 'busyboundary';
/** A multipart uploadImage up to the start of its file's bytes. */
const multipartPrefix = (name: string) =>
  Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
      `${JSON.stringify({ query: UPLOAD_IMAGE, variables: { n: name, f: null } })}\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.f"]}\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="0"; filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );

/**
 * Two bodies of one route sent at once, each stopping at 40 MiB: whichever passes the budget
 * first is refused while its bytes still arrive (the other holds its 40 MiB, and is dropped).
 */
async function refusedOfTwo(send: (i: number) => ReturnType<typeof partialBody>): Promise<RawAnswer | string> {
  const bodies = [send(0), send(1)];
  try {
    return await Promise.race(bodies.map((b) => b.answer));
  } finally {
    for (const b of bodies) b.destroy();
  }
}

describe('a body refused mid-way for the shared budget', () => {
  it('PUT /images/{name}: 503 SERVER_BUSY as JSON, with Retry-After and Connection: close', async () => {
    const answer = await refusedOfTwo((i) =>
      partialBody(
        cluster.url,
        headOf(`PUT /images/busy/put-${i} HTTP/1.1`, { 'Content-Type': 'application/octet-stream' }),
        Buffer.alloc(0),
        SENT,
      ),
    );
    expect(answer).toMatchObject({ status: 503, headers: { connection: 'close', 'retry-after': expect.stringMatching(/^\d+$/) } });
    expect(JSON.parse((answer as RawAnswer).body)).toEqual({ code: 'SERVER_BUSY', message: expect.any(String) });
  }, 60_000);

  it('PUT /uploads/{id}/fragments/{index}: 503 SERVER_BUSY as JSON, with Retry-After and Connection: close', async () => {
    const session = await beginUpload(cluster, { name: 'busy/fragments', size: 2 * DECLARED });
    const answer = await refusedOfTwo((i) =>
      partialBody(cluster.url, headOf(`PUT /uploads/${encodeURIComponent(session.id)}/fragments/${i} HTTP/1.1`, {}), Buffer.alloc(0), SENT),
    );
    expect(answer).toMatchObject({ status: 503, headers: { connection: 'close', 'retry-after': expect.stringMatching(/^\d+$/) } });
    expect(JSON.parse((answer as RawAnswer).body)).toEqual({ code: 'SERVER_BUSY', message: expect.any(String) });
  }, 60_000);

  it('a multipart uploadImage: a GraphQL error with code SERVER_BUSY (503), with Retry-After and Connection: close', async () => {
    const answer = await refusedOfTwo((i) =>
      partialBody(
        cluster.url,
        headOf('POST /graphql HTTP/1.1', {
          'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`,
          'X-GraphQL-Yoga-CSRF': '1',
          Accept: 'application/graphql-response+json',
        }),
        multipartPrefix(`busy/multipart-${i}`),
        SENT,
      ),
    );
    expect(answer).toMatchObject({ status: 503, headers: { connection: 'close', 'retry-after': expect.stringMatching(/^\d+$/) } });
    expect(JSON.parse((answer as RawAnswer).body).errors[0].extensions.code).toBe('SERVER_BUSY');
  }, 60_000);
});

/**
 * Holds the first fragment write datanode `node` receives until `release` is called: the
 * coordinator is then storing a parsed upload (its bytes still in memory) for as long as the
 * test wants. Later requests pass.
 */
function holdFirstFragmentWrite(node: number) {
  const server = cluster.nodes[node].node.server as http.Server;
  const handlers = server.listeners('request') as http.RequestListener[];
  server.removeAllListeners('request');
  const serve: http.RequestListener = (req, res) => handlers.forEach((h) => h.call(server, req, res));
  let arrived!: () => void;
  let release!: () => void;
  const held = { arrived: new Promise<void>((r) => (arrived = r)), release: () => release() };
  const released = new Promise<void>((r) => (release = r));
  let holding = true;
  server.on('request', (req, res) => {
    if (!(holding && req.method === 'PUT' && req.url?.startsWith('/fragments/'))) return serve(req, res);
    holding = false;
    arrived();
    void released.then(() => serve(req, res));
  });
  return held;
}

describe('a multipart upload keeps its charge until its request is done', () => {
  it('while a parsed 40 MiB uploadImage is stored, a second one (80 MiB together) is refused SERVER_BUSY; the first is stored', async () => {
    const held = holdFirstFragmentWrite(0);
    const upload = (name: string, fill: number) =>
      cluster.gql.multipart(UPLOAD_IMAGE, { n: name, f: null }, { 'variables.f': { data: Buffer.alloc(SENT, fill) } });
    const first = upload('held/first', 1);
    // Its file is parsed (whole) and on its way to the datanodes: the first write is held there.
    await held.arrived;
    const second = await upload('held/second', 2);
    held.release();
    expect(second.status).toBe(503);
    expect(codeOf(second)).toBe('SERVER_BUSY');
    const stored = await first;
    expect(stored.errors).toBeUndefined();
    expect(stored.data.uploadImage).toMatchObject({ name: 'held/first', size: SENT });
  }, 60_000);
});

describe('a multipart request whose response streams gives its charge back once its result is out', () => {
  it('a subscription (SSE) sent as multipart with a 40 MiB part does not hold the budget while it streams: a 40 MiB uploadImage is stored meanwhile', async () => {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query: 'subscription { clusterEvents { __typename } }', variables: { f: null } }));
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([Buffer.alloc(SENT, 3)]), 'f.bin');
    const stop = new AbortController();
    const stream = await fetch(`${cluster.url}/graphql`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${cluster.adminToken}`, 'x-graphql-yoga-csrf': '1', accept: 'text/event-stream' },
      signal: stop.signal,
    });
    try {
      // The subscription is live (its head is out) and stays open for as long as its client keeps it.
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const stored = await cluster.gql.multipart(
        UPLOAD_IMAGE,
        { n: 'streamed/second', f: null },
        { 'variables.f': { data: Buffer.alloc(SENT, 4) } },
      );
      expect(stored.errors).toBeUndefined();
      expect(stored.data.uploadImage).toMatchObject({ name: 'streamed/second', size: SENT });
    } finally {
      stop.abort();
    }
  }, 60_000);
});
