// The datanode contract (../../contract/README.md, "Datanode HTTP surface" and "The cluster
// secret") as one suite, run against every datanode implementation: in-process, real process, fakes.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DatanodeErrorBody,
  DatanodeHealthReport,
  FragmentListing,
  ImageManifest,
  ImageRecord,
  ImageTombstone,
  RecordListing,
} from '../../src/shared/datanode-api.ts';
import { datanodeClient, sha256 } from './datanode-http.ts';

export interface DatanodeUnderTest {
  url: string;
  secret: string;
  close(): Promise<void>;
}

/**
 * Registers the contract suite. `make` is called once for the suite: tests use fresh ids and
 * measure health as deltas, so a slow-to-start implementation (a process) costs one start.
 */
export function datanodeContract(name: string, make: () => Promise<DatanodeUnderTest>): void {
  describe(`datanode contract: ${name}`, () => {
    let node: DatanodeUnderTest;
    let client: ReturnType<typeof datanodeClient>;
    const runTag = randomBytes(4).toString('hex');
    let counter = 0;
    const freshId = () => `c${runTag}-${++counter}`;
    const bytes = (n: number) => randomBytes(n);
    const listedIds = async () => (await client.list()).json<FragmentListing[]>().map((f) => f.id);

    beforeAll(async () => {
      node = await make();
      client = datanodeClient(node.url, node.secret);
    });
    afterAll(async () => {
      await node?.close();
    });

    it('PUT answers 201 and GET answers the same bytes with their hash', async () => {
      const id = freshId();
      const body = bytes(100_000);
      expect((await client.put(id, body)).status).toBe(201);

      const got = await client.get(id);
      expect(got.status).toBe(200);
      expect(got.body.equals(body)).toBe(true);
      expect(got.headers['x-content-sha256']).toBe(sha256(body));
      expect(got.headers['content-length']).toBe(String(body.length));
      expect(got.headers['content-type']).toBe('application/octet-stream');
    });

    it('a fragment id may be 128 characters of [A-Za-z0-9_-]', async () => {
      const id = `Az09_-${'x'.repeat(122)}`;
      expect(id).toHaveLength(128);
      const body = bytes(10);
      expect((await client.put(id, body)).status).toBe(201);
      expect((await client.get(id)).body.equals(body)).toBe(true);
      expect((await client.delete(id)).status).toBe(204);
    });

    it('PUT whose body does not match X-Content-SHA256 answers 400 and stores nothing', async () => {
      const id = freshId();
      const res = await client.put(id, bytes(1000), { sha: sha256('something else') });
      expect(res.status).toBe(400);
      expect(res.json<DatanodeErrorBody>()).toMatchObject({ code: expect.any(String), message: expect.any(String) });
      expect((await client.get(id)).status).toBe(404);
      expect(await listedIds()).not.toContain(id);
    });

    it('PUT without or with a malformed X-Content-SHA256 answers 400 and stores nothing', async () => {
      const id = freshId();
      expect((await client.put(id, bytes(10), { sha: null })).status).toBe(400);
      expect((await client.put(id, bytes(10), { sha: 'not-hex' })).status).toBe(400);
      expect((await client.put(id, bytes(10), { sha: 'ab'.repeat(31) })).status).toBe(400);
      expect((await client.get(id)).status).toBe(404);
      expect(await listedIds()).not.toContain(id);
    });

    it('a mismatching PUT over a stored fragment leaves the stored one intact', async () => {
      const id = freshId();
      const original = bytes(500);
      await client.put(id, original);
      expect((await client.put(id, bytes(700), { sha: sha256(original) })).status).toBe(400);
      const got = await client.get(id);
      expect(got.body.equals(original)).toBe(true);
    });

    it('PUT again replaces the fragment', async () => {
      const id = freshId();
      await client.put(id, bytes(300));
      const second = bytes(200);
      expect((await client.put(id, second)).status).toBe(201);
      const got = await client.get(id);
      expect(got.body.equals(second)).toBe(true);
      expect(got.headers['x-content-sha256']).toBe(sha256(second));
      const listing = (await client.list()).json<FragmentListing[]>();
      expect(listing.filter((f) => f.id === id)).toEqual([{ id, size: 200 }]);
    });

    it('GET of an absent fragment answers 404', async () => {
      expect((await client.get(freshId())).status).toBe(404);
    });

    it('DELETE answers 204, also when the fragment is absent or already deleted', async () => {
      const id = freshId();
      expect((await client.delete(id)).status).toBe(204);
      await client.put(id, bytes(10));
      expect((await client.delete(id)).status).toBe(204);
      expect((await client.get(id)).status).toBe(404);
      expect(await listedIds()).not.toContain(id);
      expect((await client.delete(id)).status).toBe(204);
    });

    it('GET /fragments lists every fragment held with its size', async () => {
      const a = freshId();
      const b = freshId();
      await client.put(a, bytes(123));
      await client.put(b, bytes(4567));
      const res = await client.list();
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const listing = res.json<FragmentListing[]>();
      expect(Array.isArray(listing)).toBe(true);
      expect(listing).toContainEqual({ id: a, size: 123 });
      expect(listing).toContainEqual({ id: b, size: 4567 });
      for (const entry of listing) expect(Object.keys(entry).sort()).toEqual(['id', 'size']);
    });

    describe('the cluster secret', () => {
      const cases: [string, string | false][] = [
        ['without Authorization', false],
        ['with another secret', 'not-the-secret'],
      ];
      for (const [label, auth] of cases) {
        it(`every fragment request ${label} answers 401 and touches nothing`, async () => {
          const id = freshId();
          const original = bytes(64);
          await client.put(id, original);

          const intruder = bytes(64);
          const newId = freshId();
          expect((await client.put(id, intruder, { auth })).status).toBe(401);
          expect((await client.put(newId, intruder, { auth })).status).toBe(401);
          expect((await client.get(id, { auth })).status).toBe(401);
          expect((await client.delete(id, { auth })).status).toBe(401);
          expect((await client.list({ auth })).status).toBe(401);

          const got = await client.get(id);
          expect(got.status).toBe(200);
          expect(got.body.equals(original)).toBe(true);
          expect(await listedIds()).not.toContain(newId);
          expect((await client.get(newId)).status).toBe(404);
        });
      }

      it('a 401 body does not echo fragment bytes', async () => {
        const id = freshId();
        await client.put(id, Buffer.from('secret-bytes'));
        const res = await client.get(id, { auth: false });
        expect(res.status).toBe(401);
        expect(res.body.toString()).not.toContain('secret-bytes');
      });

      it('GET /health needs no secret', async () => {
        expect((await client.health({ auth: false })).status).toBe(200);
        expect((await client.health({ auth: 'not-the-secret' })).status).toBe(200);
      });
    });

    describe('fragment ids', () => {
      const badIds: [string, string][] = [
        ['..', '..'],
        ['%2E%2E (encoded ..)', '%2E%2E'],
        ['.', '.'],
        ['a%2Fb (encoded slash)', 'a%2Fb'],
        ['a/b (raw slash)', 'a/b'],
        ['129 characters', 'x'.repeat(129)],
        ['empty', ''],
        ['a space', 'a%20b'],
        ['a dot', 'a.b'],
        ['non-ASCII', '%C3%A9'],
        ['malformed percent-encoding', '%E0%A4%A'],
        ['encoded ../ traversal', '..%2F..%2Fsecret'],
      ];
      for (const [label, raw] of badIds) {
        it(`${label} answers 400 to PUT, GET and DELETE and touches no file`, async () => {
          const before = (await client.list()).json<FragmentListing[]>();
          const body = bytes(16);
          const put = await client.put(raw, body);
          expect(put.status).toBe(400);
          expect(put.json<DatanodeErrorBody>().code).toEqual(expect.any(String));
          expect((await client.get(raw)).status).toBe(400);
          expect((await client.delete(raw)).status).toBe(400);
          const after = (await client.list()).json<FragmentListing[]>();
          expect(after).toEqual(expect.arrayContaining(before));
          expect(after).toHaveLength(before.length);
        });
      }
    });

    describe('GET /health', () => {
      it('answers the measured numbers, each in range', async () => {
        const res = await client.health();
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        const h = res.json<DatanodeHealthReport>();
        // Without the secret it says nothing about who it is: no nodeId, clusterId, proof.
        expect(Object.keys(h).sort()).toEqual(
          ['cpuPercent', 'diskFreeBytes', 'diskPercent', 'fragmentCount', 'memoryPercent', 'storedBytes'].sort(),
        );
        // With it, its node id and cluster (none yet), with a proof bound to the request's nonce.
        const identified = (await client.health({ auth: node.secret })).json<DatanodeHealthReport>();
        expect(identified.nodeId).toMatch(/^[0-9a-f-]{36}$/);
        expect(identified.clusterId).toBeNull();
        expect(identified.proof).toMatch(/^[0-9a-f]{64}$/);
        for (const key of ['cpuPercent', 'memoryPercent', 'diskPercent'] as const) {
          expect(typeof h[key]).toBe('number');
          expect(h[key]).toBeGreaterThanOrEqual(0);
          expect(h[key]).toBeLessThanOrEqual(100);
        }
        // measured, not simulated: a real machine uses some memory and some disk
        expect(h.memoryPercent).toBeGreaterThan(0);
        expect(h.diskPercent).toBeGreaterThan(0);
        expect(Number.isInteger(h.diskFreeBytes)).toBe(true);
        expect(h.diskFreeBytes).toBeGreaterThan(0);
        expect(Number.isInteger(h.fragmentCount)).toBe(true);
        expect(Number.isInteger(h.storedBytes)).toBe(true);
      });

      it('fragmentCount and storedBytes follow puts, replacements and deletes', async () => {
        const report = async () => (await client.health()).json<DatanodeHealthReport>();
        const base = await report();
        const a = freshId();
        const b = freshId();
        await client.put(a, bytes(1000));
        await client.put(b, bytes(2000));
        expect(await report()).toMatchObject({ fragmentCount: base.fragmentCount + 2, storedBytes: base.storedBytes + 3000 });

        await client.put(a, bytes(400)); // replacement: same count, new size
        expect(await report()).toMatchObject({ fragmentCount: base.fragmentCount + 2, storedBytes: base.storedBytes + 2400 });

        await client.put(b, bytes(9), { sha: sha256('nope') }); // rejected: nothing changes
        expect(await report()).toMatchObject({ fragmentCount: base.fragmentCount + 2, storedBytes: base.storedBytes + 2400 });

        await client.delete(b);
        await client.delete(b);
        expect(await report()).toMatchObject({ fragmentCount: base.fragmentCount + 1, storedBytes: base.storedBytes + 400 });
        await client.delete(a);
        expect(await report()).toMatchObject({ fragmentCount: base.fragmentCount, storedBytes: base.storedBytes });
      });

      it('fragmentCount and storedBytes agree with GET /fragments', async () => {
        await client.put(freshId(), bytes(777));
        const h = (await client.health()).json<DatanodeHealthReport>();
        const listing = (await client.list()).json<FragmentListing[]>();
        expect(h.fragmentCount).toBe(listing.length);
        expect(h.storedBytes).toBe(listing.reduce((sum, f) => sum + f.size, 0));
      });
    });

    describe('image records (manifests and tombstones)', () => {
      const manifestOf = (image: string, fragments: { id: string; body: Buffer }[]): ImageManifest => ({
        kind: 'manifest',
        image,
        name: `contract/${image}`,
        size: fragments.reduce((n, f) => n + f.body.length, 0),
        contentType: 'application/octet-stream',
        sha256: sha256(Buffer.concat(fragments.map((f) => f.body))),
        createdAt: Date.now(),
        fragmentSize: fragments[0].body.length,
        fragments: fragments.map((f, index) => ({ index, size: f.body.length, sha256: sha256(f.body), id: f.id })),
      });
      const putRecord = (record: ImageRecord, opts: { auth?: string | false; path?: string } = {}) =>
        client.raw('PUT', opts.path ?? `/records/${record.kind}/${record.image}`, {
          auth: opts.auth,
          body: Buffer.from(JSON.stringify(record)),
          headers: { 'content-type': 'application/json' },
        });
      const records = async () => (await client.raw('GET', '/records')).json<RecordListing>();

      it('PUT /records/manifest/{image} answers 201 and GET /records lists it, the same after a second PUT', async () => {
        const f = { id: freshId(), body: bytes(300) };
        const m = manifestOf(freshId(), [f]);
        expect((await putRecord(m)).status).toBe(201);
        expect((await putRecord(m)).status).toBe(201);
        const listed = (await records()).manifests.filter((x) => x.image === m.image);
        expect(listed).toEqual([m]);
      });

      it('a fragment PUT with X-Tessera-Manifest records the manifest with the fragment', async () => {
        const f = { id: freshId(), body: bytes(500) };
        const m = manifestOf(freshId(), [f]);
        const res = await client.raw('PUT', `/fragments/${f.id}`, {
          body: f.body,
          headers: { 'x-content-sha256': sha256(f.body), 'x-tessera-manifest': Buffer.from(JSON.stringify(m)).toString('base64url') },
        });
        expect(res.status).toBe(201);
        expect((await client.get(f.id)).body.equals(f.body)).toBe(true);
        expect((await records()).manifests.find((x) => x.image === m.image)).toEqual(m);
      });

      it('a malformed record, or one for another image or of another kind, answers 400 INVALID_RECORD and stores nothing', async () => {
        const m = manifestOf(freshId(), [{ id: freshId(), body: bytes(10) }]);
        const bad = [
          await putRecord({ ...m, sha256: 'nope' } as ImageManifest),
          await putRecord(m, { path: `/records/manifest/${freshId()}` }),
          await putRecord(m, { path: `/records/tombstone/${m.image}` }),
          await client.raw('PUT', `/records/manifest/${m.image}`, { body: Buffer.from('{not json') }),
          await client.raw('PUT', `/fragments/${freshId()}`, { body: bytes(5), headers: { 'x-tessera-manifest': 'garbage' } }),
        ];
        for (const res of bad) {
          expect(res.status).toBe(400);
          expect(res.json<DatanodeErrorBody>().code).toBe('INVALID_RECORD');
        }
        expect((await records()).manifests.some((x) => x.image === m.image)).toBe(false);
      });

      it('records need the secret: 401 without it', async () => {
        const m = manifestOf(freshId(), [{ id: freshId(), body: bytes(10) }]);
        expect((await putRecord(m, { auth: false })).status).toBe(401);
        expect((await client.raw('GET', '/records', { auth: false })).status).toBe(401);
        expect((await records()).manifests.some((x) => x.image === m.image)).toBe(false);
      });

      it('refuses (409 FRAGMENT_IN_USE) to DELETE a fragment a live manifest references, keeping it; deletes it once the DELETE names the image as deleted, and keeps the tombstone', async () => {
        const f = { id: freshId(), body: bytes(700) };
        expect((await client.put(f.id, f.body)).status).toBe(201);
        const m = manifestOf(freshId(), [f]);
        expect((await putRecord(m)).status).toBe(201);

        const refused = await client.delete(f.id);
        expect(refused.status).toBe(409);
        expect(refused.json<DatanodeErrorBody>().code).toBe('FRAGMENT_IN_USE');
        const wrongImage = await client.raw('DELETE', `/fragments/${f.id}`, { headers: { 'x-tessera-deleted-image': freshId() } });
        expect(wrongImage.status).toBe(409);
        expect((await client.get(f.id)).status).toBe(200);

        const proved = await client.raw('DELETE', `/fragments/${f.id}`, { headers: { 'x-tessera-deleted-image': m.image } });
        expect(proved.status).toBe(204);
        expect((await client.get(f.id)).status).toBe(404);
        expect((await records()).tombstones.some((t) => t.image === m.image)).toBe(true);
      });

      it('a tombstone frees the fragments of its image; a surplus-replica DELETE may remove a referenced copy', async () => {
        const f1 = { id: freshId(), body: bytes(100) };
        const f2 = { id: freshId(), body: bytes(100) };
        for (const f of [f1, f2]) await client.put(f.id, f.body);
        const m1 = manifestOf(freshId(), [f1]);
        const m2 = manifestOf(freshId(), [f2]);
        await putRecord(m1);
        await putRecord(m2);
        const t: ImageTombstone = { kind: 'tombstone', image: m1.image, deletedAt: Date.now() };
        expect((await putRecord(t)).status).toBe(201);
        expect((await records()).tombstones.find((x) => x.image === m1.image)).toEqual(t);
        expect((await client.delete(f1.id)).status).toBe(204);
        const surplus = await client.raw('DELETE', `/fragments/${f2.id}`, { headers: { 'x-tessera-delete-reason': 'surplus-replica' } });
        expect(surplus.status).toBe(204);
      });
    });
  });
}
