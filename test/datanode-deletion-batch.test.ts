// POST /deletions: many tombstones and fragment deletions in one signed request. Each fragment
// is judged as DELETE /fragments/{id} judges it (nothing a live manifest references goes without
// its image's tombstone or a surplus-replica reason), a bad batch changes nothing, and the
// coordinator's client falls back to single requests on a datanode without the route.
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDatanode, type Datanode } from '../datanode/server.ts';
import { createDatanodeClient, type DatanodeHttpError } from '../src/cluster/datanode-client.ts';
import type { DatanodeErrorBody, ImageManifest } from '../src/shared/datanode-api.ts';
import { rawRequest, sha256 } from './support/datanode-http.ts';

const SECRET = 'deletion-batch-secret';
const CLUSTER = 'cluster-deletion-batch';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startNode({ insecure = false } = {}) {
  const secret = insecure ? undefined : SECRET;
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-batch-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const node: Datanode = await createDatanode({ dataDir, secret });
  const { url } = await node.listen(0, '127.0.0.1');
  cleanups.push(() => node.close());
  const client = createDatanodeClient({ secret, identity: { clusterId: () => CLUSTER, expectedNodeId: () => undefined } });
  cleanups.push(async () => client.close());
  const exists = (id: string) =>
    access(join(dataDir, 'fragments', id)).then(
      () => true,
      () => false,
    );
  return { node, url, client, exists };
}

type Node = Awaited<ReturnType<typeof startNode>>;

/** Stores image `image` holding fragments `ids` (the manifest rides on the first fragment's PUT). */
async function storeImage({ client, url }: Node, image: string, ids: string[]) {
  const bodies = ids.map(() => randomBytes(1000));
  const manifest: ImageManifest = {
    kind: 'manifest',
    image,
    name: `${image}.bin`,
    size: 1000 * ids.length,
    contentType: 'application/octet-stream',
    sha256: sha256(Buffer.concat(bodies)),
    createdAt: Date.now(),
    fragmentSize: 1000,
    fragments: ids.map((id, index) => ({ index, size: 1000, sha256: sha256(bodies[index]), id })),
  };
  for (const [i, id] of ids.entries()) await client.putFragment(url, id, bodies[i], sha256(bodies[i]), i === 0 ? manifest : undefined);
}

const tombstoned = (n: Node) => n.node.records.list().tombstones.map((t) => t.image);

describe('POST /deletions', () => {
  it('deletes what has proof, in one request, and keeps a live image’s fragment', async () => {
    const n = await startNode();
    await storeImage(n, 'imgA', ['a1', 'a2']);
    await storeImage(n, 'imgB', ['b1']);
    await storeImage(n, 'imgC', ['c1']);
    await n.client.putFragment(n.url, 'orphan', Buffer.from('x'), sha256('x'));

    const outcomes = await n.client.deleteBatch(n.url, {
      tombstones: [{ kind: 'tombstone', image: 'imgC', deletedAt: 1 }],
      fragments: [
        { id: 'a1', reason: 'image-deleted', deletedImage: 'imgA' },
        // No proof of its own: imgA's tombstone, carried by a1 in the same batch, is it.
        { id: 'a2', reason: 'orphan' },
        { id: 'orphan', reason: 'orphan' },
        // imgB is live here and nothing in the batch says otherwise: refused, kept.
        { id: 'b1', reason: 'orphan' },
        // imgC's tombstone is in the batch.
        { id: 'c1', reason: 'orphan' },
        { id: 'absent', reason: 'orphan' },
      ],
    });
    expect(outcomes).toEqual(['deleted', 'deleted', 'deleted', 'in-use', 'deleted', 'deleted']);
    for (const id of ['a1', 'a2', 'orphan', 'c1']) expect(await n.exists(id)).toBe(false);
    expect(await n.exists('b1')).toBe(true);
    expect(tombstoned(n).sort()).toEqual(['imgA', 'imgC']);

    // A tombstone a deletion carries for another image than the fragment's live owner is not believed.
    expect(await n.client.deleteBatch(n.url, { tombstones: [], fragments: [{ id: 'b1', deletedImage: 'imgX' }] })).toEqual(['in-use']);
    expect(tombstoned(n)).not.toContain('imgX');
    // A surplus replica may go although its image is live.
    expect(await n.client.deleteBatch(n.url, { tombstones: [], fragments: [{ id: 'b1', reason: 'surplus-replica' }] })).toEqual([
      'deleted',
    ]);
    expect(await n.exists('b1')).toBe(false);
    expect(tombstoned(n)).not.toContain('imgB');
  });

  it('a body that does not match its signed hash, or is not a batch, changes nothing', async () => {
    const n = await startNode();
    await storeImage(n, 'imgB', ['b1']);
    const post = (body: string, headers: Record<string, string>) =>
      rawRequest(n.url, 'POST', '/deletions', { headers: { authorization: `Bearer ${SECRET}`, ...headers }, body });
    const code = (r: { json<T>(): T }) => r.json<DatanodeErrorBody>().code;
    const batch = JSON.stringify({ tombstones: [{ kind: 'tombstone', image: 'imgB', deletedAt: 1 }], fragments: [{ id: 'b1' }] });

    const altered = await post(batch, { 'x-content-sha256': sha256('something else') });
    expect([altered.status, code(altered)]).toEqual([400, 'CHECKSUM_MISMATCH']);
    const unhashed = await post(batch, {});
    expect([unhashed.status, code(unhashed)]).toEqual([400, 'INVALID_CHECKSUM_HEADER']);
    const badId = JSON.stringify({ tombstones: [{ kind: 'tombstone', image: 'imgB', deletedAt: 1 }], fragments: [{ id: '../b1' }] });
    const invalid = await post(badId, { 'x-content-sha256': sha256(badId) });
    expect([invalid.status, code(invalid)]).toEqual([400, 'INVALID_DELETION_BATCH']);
    const tooMany = JSON.stringify({ tombstones: [], fragments: Array.from({ length: 1025 }, () => ({ id: 'b1' })) });
    const over = await post(tooMany, { 'x-content-sha256': sha256(tooMany) });
    expect([over.status, code(over)]).toEqual([400, 'INVALID_DELETION_BATCH']);
    const stranger = await rawRequest(n.url, 'POST', '/deletions', { headers: { 'x-content-sha256': sha256(batch) }, body: batch });
    expect([stranger.status, code(stranger)]).toEqual([401, 'UNAUTHENTICATED']);
    const get = await rawRequest(n.url, 'GET', '/deletions', { headers: { authorization: `Bearer ${SECRET}` } });
    expect([get.status, get.headers.allow]).toEqual([405, 'POST']);

    expect(tombstoned(n)).toEqual([]);
    expect(await n.exists('b1')).toBe(true);
    // The same batch, well sent, is obeyed.
    expect((await post(batch, { 'x-content-sha256': sha256(batch) })).json()).toEqual({ fragments: ['deleted'] });
    expect(await n.exists('b1')).toBe(false);
  });

  it('a signed batch from a coordinator without a cluster id is refused', async () => {
    const n = await startNode();
    await storeImage(n, 'imgB', ['b1']);
    const lost = createDatanodeClient({ secret: SECRET, identity: { clusterId: () => undefined, expectedNodeId: () => undefined } });
    cleanups.push(async () => lost.close());
    const err = await lost
      .deleteBatch(n.url, { tombstones: [{ kind: 'tombstone', image: 'imgB', deletedAt: 1 }], fragments: [] })
      .catch((e) => e);
    expect((err as DatanodeHttpError).code).toBe('CLUSTER_ID_REQUIRED');
    expect(tombstoned(n)).toEqual([]);
  });

  it('on a datanode without the route, the client sends the same deletions one by one', async () => {
    // A real datanode (--insecure, so answers need no proof) behind a proxy that hides POST /deletions.
    const n = await startNode({ insecure: true });
    const hidden: string[] = [];
    const proxy: Server = createServer((req, res) => {
      if (req.url === '/deletions') {
        hidden.push(req.method ?? '');
        req.resume();
        return void res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ code: 'ROUTE_NOT_FOUND', message: 'no' }));
      }
      const target = new URL(n.url);
      const forward = httpRequest(
        { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const via = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    await storeImage(n, 'imgA', ['a1']);
    await storeImage(n, 'imgB', ['b1']);

    const outcomes = await n.client.deleteBatch(via, {
      tombstones: [{ kind: 'tombstone', image: 'imgT', deletedAt: 1 }],
      fragments: [
        { id: 'a1', reason: 'image-deleted', deletedImage: 'imgA' },
        { id: 'b1', reason: 'orphan' },
      ],
    });
    expect(hidden).toEqual(['POST']);
    expect(outcomes).toEqual(['deleted', 'in-use']);
    expect(await n.exists('a1')).toBe(false);
    expect(await n.exists('b1')).toBe(true);
    expect(tombstoned(n).sort()).toEqual(['imgA', 'imgT']);
  });
});
