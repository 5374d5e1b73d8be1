// What the in-process datanode does beyond the shared contract: limits, routing, the files it
// leaves on disk, concurrency, counters across restarts, aborted uploads, insecure mode.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DatanodeErrorBody, DatanodeHealthReport, FragmentListing } from '../src/shared/datanode-api.ts';
import { createDatanode } from '../datanode/server.ts';
import type { Datanode, DatanodeOptions } from '../datanode/server.ts';
import { datanodeClient, sha256 } from './support/datanode-http.ts';

const SECRET = 'server-test-secret';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startNode(options: Partial<DatanodeOptions> = {}, existingDir?: string) {
  const dataDir = existingDir ?? (await mkdtemp(join(tmpdir(), 'tessera-dn-')));
  if (existingDir === undefined) cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const node: Datanode = await createDatanode({ dataDir, secret: SECRET, ...options });
  const { url, port } = await node.listen(0, '127.0.0.1');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await node.close();
  };
  cleanups.push(close);
  const secret = 'secret' in options ? options.secret : SECRET;
  return { node, url, port, dataDir, close, client: datanodeClient(url, secret) };
}

const tmpFiles = (dataDir: string) => readdir(join(dataDir, 'tmp'));
const health = async (client: ReturnType<typeof datanodeClient>) => (await client.health()).json<DatanodeHealthReport>();

/** A PUT whose body is written by the caller, chunk by chunk (no Content-Length unless given). */
function streamingPut(url: string, id: string, headers: Record<string, string>) {
  const { hostname, port } = new URL(url);
  const req = httpRequest({ hostname, port, method: 'PUT', path: `/fragments/${id}`, headers, agent: false });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  return { req, response };
}

describe('datanode server', () => {
  it('stores each fragment as one file holding exactly its bytes, and leaves tmp/ empty', async () => {
    const { client, dataDir } = await startNode();
    const body = randomBytes(300_000);
    expect((await client.put('exact', body)).status).toBe(201);
    expect((await readFile(join(dataDir, 'fragments', 'exact'))).equals(body)).toBe(true);
    expect(await tmpFiles(dataDir)).toEqual([]);
  });

  it('a checksum mismatch answers CHECKSUM_MISMATCH and removes its temp file', async () => {
    const { client, dataDir } = await startNode();
    const res = await client.put('bad', randomBytes(1000), { sha: sha256('x') });
    expect(res.status).toBe(400);
    expect(res.json<DatanodeErrorBody>().code).toBe('CHECKSUM_MISMATCH');
    expect(await tmpFiles(dataDir)).toEqual([]);
    expect(await readdir(join(dataDir, 'fragments'))).toEqual([]);
  });

  it('GET hashes the bytes it sends: a fragment rotted on disk shows its real hash', async () => {
    const { client, dataDir } = await startNode();
    const body = randomBytes(4096);
    await client.put('rot', body);
    const rotted = Buffer.from(body);
    rotted[100] ^= 0xff;
    await writeFile(join(dataDir, 'fragments', 'rot'), rotted);
    const res = await client.get('rot');
    expect(res.headers['x-content-sha256']).toBe(sha256(rotted));
    expect(res.headers['x-content-sha256']).not.toBe(sha256(body));
  });

  describe('maxFragmentBytes', () => {
    it('a declared Content-Length past the limit answers 413 before reading the body', async () => {
      const { client, dataDir } = await startNode({ maxFragmentBytes: 1024 });
      const res = await client.put('big', randomBytes(1025));
      expect(res.status).toBe(413);
      expect(res.json<DatanodeErrorBody>().code).toBe('PAYLOAD_TOO_LARGE');
      expect(await tmpFiles(dataDir)).toEqual([]);
      expect((await client.get('big')).status).toBe(404);
      expect((await client.put('fits', randomBytes(1024))).status).toBe(201);
    });

    it('a chunked body that grows past the limit answers 413 and stores nothing', async () => {
      const { url, client, dataDir } = await startNode({ maxFragmentBytes: 64 * 1024 });
      const body = randomBytes(256 * 1024);
      const { req, response } = streamingPut(url, 'chunked', {
        authorization: `Bearer ${SECRET}`,
        'x-content-sha256': sha256(body),
      });
      req.on('error', () => undefined); // the server may close while we still write
      for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024));
      req.end();
      expect((await response).status).toBe(413);
      await expect.poll(async () => (await tmpFiles(dataDir)).length).toBe(0);
      expect((await client.get('chunked')).status).toBe(404);
    });
  });

  describe('routing', () => {
    it('an unknown path answers 404, a wrong method 405 with Allow', async () => {
      const { client } = await startNode();
      expect((await client.raw('GET', '/nope')).status).toBe(404);
      expect((await client.raw('GET', '/fragmentsx')).status).toBe(404);
      const post = await client.raw('POST', '/fragments/abc', { body: Buffer.from('x') });
      expect(post.status).toBe(405);
      expect(post.headers.allow).toBe('GET, PUT, DELETE');
      expect((await client.raw('PUT', '/fragments')).status).toBe(405);
      expect((await client.raw('DELETE', '/health')).status).toBe(405);
    });

    it('ignores a query string', async () => {
      const { client } = await startNode();
      await client.put('q', Buffer.from('abc'));
      expect((await client.raw('GET', '/fragments/q?x=1')).body.toString()).toBe('abc');
      expect((await client.raw('GET', '/health?x=1', { auth: false })).status).toBe(200);
    });

    it('an unauthenticated PUT is refused before its body reaches a file', async () => {
      const { client, dataDir } = await startNode();
      const res = await client.put('noauth', randomBytes(2 * 1024 * 1024), { auth: false });
      expect(res.status).toBe(401);
      expect(res.json<DatanodeErrorBody>().code).toBe('UNAUTHENTICATED');
      expect(await tmpFiles(dataDir)).toEqual([]);
      expect(await readdir(join(dataDir, 'fragments'))).toEqual([]);
    });

    it('keeps connections alive for 65 s', async () => {
      const { node } = await startNode();
      expect(node.server.keepAliveTimeout).toBe(65_000);
    });
  });

  describe('concurrency', () => {
    it('parallel PUTs of one id never mix: the result is one of the bodies whole, counted once', async () => {
      const { client, dataDir } = await startNode();
      const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(100_000 + i * 1000));
      const statuses = await Promise.all(bodies.map(async (b) => (await client.put('same', b)).status));
      expect(statuses.every((s) => s === 201)).toBe(true);
      const stored = (await client.get('same')).body;
      const match = bodies.find((b) => b.equals(stored));
      expect(match).toBeDefined();
      expect(await health(client)).toMatchObject({ fragmentCount: 1, storedBytes: match!.length });
      expect(await tmpFiles(dataDir)).toEqual([]);
    });

    it('many 2 MiB PUTs in parallel over keep-alive connections are all stored and counted', async () => {
      const { url, client } = await startNode();
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      const { hostname, port } = new URL(url);
      const bodies = Array.from({ length: 16 }, () => randomBytes(2 * 1024 * 1024));
      const put = (id: string, body: Buffer) =>
        new Promise<number>((resolve, reject) => {
          const req = httpRequest(
            {
              hostname,
              port,
              agent,
              method: 'PUT',
              path: `/fragments/${id}`,
              headers: { authorization: `Bearer ${SECRET}`, 'x-content-sha256': sha256(body), 'content-length': body.length },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      try {
        const statuses = await Promise.all(bodies.map((b, i) => put(`p${i}`, b)));
        expect(statuses).toEqual(bodies.map(() => 201));
      } finally {
        agent.destroy();
      }
      expect(await health(client)).toMatchObject({ fragmentCount: 16, storedBytes: 16 * 2 * 1024 * 1024 });
      const got = await client.get('p7');
      expect(got.body.equals(bodies[7])).toBe(true);
    });

    it('a client that disconnects mid-PUT leaves no temp file and no fragment', async () => {
      const { url, client, dataDir } = await startNode();
      const { req, response } = streamingPut(url, 'aborted', {
        authorization: `Bearer ${SECRET}`,
        'x-content-sha256': sha256('whatever'),
        'content-length': String(1024 * 1024),
      });
      response.catch(() => undefined);
      req.write(randomBytes(300_000));
      await expect.poll(async () => (await tmpFiles(dataDir)).length).toBe(1);
      req.destroy();
      await expect.poll(async () => (await tmpFiles(dataDir)).length).toBe(0);
      expect((await client.get('aborted')).status).toBe(404);
      expect(await health(client)).toMatchObject({ fragmentCount: 0, storedBytes: 0 });
    });
  });

  describe('restart on the same data dir', () => {
    it('finds its fragments, counts them, and clears leftover temp files', async () => {
      const first = await startNode();
      await first.client.put('keep1', randomBytes(1111));
      await first.client.put('keep2', randomBytes(2222));
      await first.close();
      await writeFile(join(first.dataDir, 'tmp', 'keep3.deadbeef'), randomBytes(500)); // a crashed write
      await writeFile(join(first.dataDir, 'fragments', 'not.a.fragment'), 'operator notes'); // not an id
      await mkdir(join(first.dataDir, 'fragments', 'subdir'));

      const second = await startNode({}, first.dataDir);
      expect(await tmpFiles(first.dataDir)).toEqual([]);
      expect(await health(second.client)).toMatchObject({ fragmentCount: 2, storedBytes: 3333 });
      const listing = (await second.client.list()).json<FragmentListing[]>();
      expect(listing.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
        { id: 'keep1', size: 1111 },
        { id: 'keep2', size: 2222 },
      ]);
    });
  });

  it('without a secret (--insecure) every request is accepted', async () => {
    const { client } = await startNode({ secret: undefined });
    expect((await client.put('open', Buffer.from('abc'))).status).toBe(201);
    expect((await client.get('open')).body.toString()).toBe('abc');
    expect((await client.list()).status).toBe(200);
  });

  it('GET /health answers from the last sample without waiting for a new one', async () => {
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { client } = await startNode({
      healthIntervalMs: 50,
      sampleSystem: async () => {
        calls += 1;
        if (calls > 1) await gate; // every later sample hangs until the test ends
        return { cpuPercent: 12.5, memoryPercent: 40, diskPercent: 50, diskFreeBytes: 1234 };
      },
    });
    try {
      await client.health();
      while (calls < 2) await new Promise((r) => setTimeout(r, 10)); // a second sample is now stuck
      // Answering at all proves it did not wait: the stuck sample never completes before release().
      const h = await health(client);
      expect(h).toMatchObject({
        cpuPercent: 12.5,
        memoryPercent: 40,
        diskPercent: 50,
        diskFreeBytes: 1234,
        fragmentCount: 0,
        storedBytes: 0,
      });
    } finally {
      release();
    }
  });

  it('a health sampler that never succeeded answers 503 HEALTH_UNAVAILABLE', async () => {
    const { client } = await startNode({
      sampleSystem: async () => {
        throw new Error('no systeminformation here');
      },
    });
    const res = await client.health();
    expect(res.status).toBe(503);
    expect(res.json<DatanodeErrorBody>().code).toBe('HEALTH_UNAVAILABLE');
  });
});
