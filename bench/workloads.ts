// What the bench sends: images made of a small pool of random fragments (distinct enough for the
// hashes, cheap for the client), and the upload/download/small-image loops against Tessera and
// against the bare proxy. Both sides use the same client; only the server differs.
import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { BenchHttp } from './http.ts';
import { indexFile } from './listing.ts';
import { imagePath } from '../src/image-paths.ts';

export const MB = 1e6;

export interface Piece {
  bytes: Buffer;
  sha256: string;
  /** The bytes as base64 (ASCII), ready to drop into a JSON string. */
  base64: Buffer;
}

export function makePool(count: number, size: number, withBase64 = false): Piece[] {
  return Array.from({ length: count }, () => {
    const bytes = randomBytes(size);
    return {
      bytes,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      base64: withBase64 ? Buffer.from(bytes.toString('base64'), 'latin1') : Buffer.alloc(0),
    };
  });
}

/** Fragment `i` of an image of `size` bytes cut in `fragmentSize` pieces from `pool`. */
export function pieceAt(pool: Piece[], size: number, fragmentSize: number, i: number): Piece {
  const piece = pool[i % pool.length];
  const length = Math.min(fragmentSize, size - i * fragmentSize);
  if (length === piece.bytes.length) return piece;
  const bytes = piece.bytes.subarray(0, length);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), base64: Buffer.from(bytes.toString('base64'), 'latin1') };
}

export function imageSha256(pool: Piece[], size: number, fragmentSize: number): string {
  const hash = createHash('sha256');
  for (let i = 0; i * fragmentSize < size; i++) hash.update(pieceAt(pool, size, fragmentSize, i).bytes);
  return hash.digest('hex');
}

/** Runs task(0..count-1) with `concurrency` in flight, in index order; resolves when all are done. */
export async function inFlight(count: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

const BEGIN = `mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id fragmentSize fragmentCount } }`;
const FRAGMENT_FILE = `mutation($u: ID!, $i: Int!, $s: String, $f: File) { uploadFragment(uploadId: $u, index: $i, sha256: $s, file: $f) { index } }`;
const FRAGMENT_DATA = `mutation($u: ID!, $i: Int!, $s: String, $d: Base64) { uploadFragment(uploadId: $u, index: $i, sha256: $s, data: $d) { index } }`;
const COMPLETE = `mutation($u: ID!) { completeUpload(uploadId: $u) { size sha256 } }`;
const UPLOAD_IMAGE = `mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f) { size } }`;

type Begun = { beginUpload: { id: string; fragmentSize: number; fragmentCount: number } };

/** The chunked upload of one image to Tessera: beginUpload, fragments (multipart or base64), completeUpload. */
export async function tesseraUpload(
  http: BenchHttp,
  name: string,
  size: number,
  pool: Piece[],
  opts: { inFlight: number; encoding: 'multipart' | 'base64' },
): Promise<{ sha256: string }> {
  const { beginUpload: up } = await http.graphql<Begun>(BEGIN, { i: { name, size, contentType: 'application/octet-stream' } });
  await inFlight(up.fragmentCount, opts.inFlight, async (i) => {
    const piece = pieceAt(pool, size, up.fragmentSize, i);
    if (opts.encoding === 'multipart') {
      await http.graphqlMultipart(FRAGMENT_FILE, { u: up.id, i, s: piece.sha256 }, 'f', piece.bytes);
    } else {
      const head = Buffer.from(
        `{"query":${JSON.stringify(FRAGMENT_DATA)},"variables":{"u":${JSON.stringify(up.id)},"i":${i},"s":"${piece.sha256}","d":"`,
      );
      const answer = await http.request('POST', '/graphql', { 'content-type': 'application/json', accept: 'application/json' }, [
        head,
        piece.base64,
        Buffer.from('"}}'),
      ]);
      const parsed = JSON.parse(answer.body.toString('utf8'));
      if (parsed.errors) throw new Error(`uploadFragment: ${parsed.errors[0].message}`);
    }
  });
  const done = await http.graphql<{ completeUpload: { size: number; sha256: string } }>(COMPLETE, { u: up.id });
  return done.completeUpload;
}

/** Fragments stored through the bare proxy and not yet discarded (discardBareFragments). */
const bareStored = new Set<string>();

/** The same bytes through the bare proxy: one PUT per fragment, `inFlight` at a time. */
export async function bareUpload(
  http: BenchHttp,
  name: string,
  size: number,
  fragmentSize: number,
  pool: Piece[],
  opts: { inFlight: number },
): Promise<{ id: string; size: number }[]> {
  const count = Math.ceil(size / fragmentSize);
  const ids = Array.from({ length: count }, (_, i) => ({
    id: `${name.replace(/[^A-Za-z0-9_-]/g, '_')}_${i}`,
    size: Math.min(fragmentSize, size - i * fragmentSize),
  }));
  await inFlight(count, opts.inFlight, async (i) => {
    const answer = await http.request('PUT', `/fragments/${ids[i].id}`, { 'content-type': 'application/octet-stream' }, [
      pieceAt(pool, size, fragmentSize, i).bytes,
    ]);
    if (answer.status !== 201) throw new Error(`bare PUT answered ${answer.status}: ${answer.body}`);
    bareStored.add(ids[i].id);
  });
  return ids;
}

/** Tells the bare proxy which fragments (ids and datanodes, from the coordinator's index) make `name`, so it reads the very same files. */
export async function bareObjectFromTessera(http: BenchHttp, clusterDataDir: string, name: string, objectName: string): Promise<void> {
  const db = new Database(indexFile(clusterDataDir), { readonly: true });
  try {
    const rows = db
      .prepare<[string], { id: string; size: number; urls: string }>(
        `SELECT f.id, f.size, (SELECT group_concat(url) FROM (SELECT d.url FROM replicas r JOIN datanodes d ON d.id = r.datanode_id WHERE r.fragment_id = f.id ORDER BY d.id)) AS urls
         FROM fragments f JOIN images i ON i.id = f.image_id WHERE i.name = ? AND i.state = 'stored' ORDER BY f.idx`,
      )
      .all(name);
    if (rows.length === 0) throw new Error(`no fragments of ${name} in the index`);
    const body = JSON.stringify(rows.map((r) => ({ id: r.id, size: r.size, urls: r.urls.split(',') })));
    const answer = await http.request('POST', `/objects/${encodeURIComponent(objectName)}`, { 'content-type': 'application/json' }, [
      Buffer.from(body),
    ]);
    if (answer.status !== 201) throw new Error(`bare POST /objects answered ${answer.status}`);
  } finally {
    db.close();
  }
}

export async function download(http: BenchHttp, path: string, expected: number): Promise<void> {
  const { status, bytes } = await http.drain(path);
  if (status !== 200 || bytes !== expected) throw new Error(`GET ${path}: ${status}, ${bytes} bytes (expected 200, ${expected})`);
}

/** How a small image is stored: PUT /images/{name}, the uploadImage mutation, or the chunked mutations. */
export type SmallUploadWay = 'put' | 'uploadImage' | 'chunked';

/** Stores `count` small images (8 at a time) through Tessera; `how` picks the request(s). */
export async function tesseraSmallUploads(
  http: BenchHttp,
  names: string[],
  pool: Piece[],
  concurrency: number,
  how: SmallUploadWay,
): Promise<void> {
  await inFlight(names.length, concurrency, async (i) => {
    const piece = pool[i % pool.length];
    if (how === 'put') {
      const answer = await http.request('PUT', imagePath(names[i]), { 'content-type': 'image/jpeg' }, [piece.bytes]);
      if (answer.status !== 201) throw new Error(`PUT ${names[i]} answered ${answer.status}: ${answer.body}`);
      return;
    }
    if (how === 'uploadImage') {
      await http.graphqlMultipart(UPLOAD_IMAGE, { n: names[i] }, 'f', piece.bytes);
      return;
    }
    const { beginUpload: up } = await http.graphql<Begun>(BEGIN, { i: { name: names[i], size: piece.bytes.length } });
    await http.graphqlMultipart(FRAGMENT_FILE, { u: up.id, i: 0, s: piece.sha256 }, 'f', piece.bytes);
    await http.graphql(COMPLETE, { u: up.id });
  });
}

export async function bareSmallUploads(http: BenchHttp, ids: string[], pool: Piece[], concurrency: number): Promise<void> {
  await inFlight(ids.length, concurrency, async (i) => {
    const answer = await http.request('PUT', `/fragments/${ids[i]}`, { 'content-type': 'application/octet-stream' }, [
      pool[i % pool.length].bytes,
    ]);
    if (answer.status !== 201) throw new Error(`bare PUT answered ${answer.status}`);
    bareStored.add(ids[i]);
  });
}

/** Deletes every fragment stored through the bare proxy so far (its objects stay named, unreadable). */
export async function discardBareFragments(http: BenchHttp, concurrency: number): Promise<void> {
  const ids = [...bareStored];
  await inFlight(ids.length, concurrency, async (i) => {
    const answer = await http.request('DELETE', `/fragments/${ids[i]}`);
    if (answer.status !== 204) throw new Error(`bare DELETE answered ${answer.status}: ${answer.body}`);
    bareStored.delete(ids[i]);
  });
}

export async function smallReads(http: BenchHttp, paths: string[], size: number, concurrency: number): Promise<void> {
  await inFlight(paths.length, concurrency, (i) => download(http, paths[i], size));
}
