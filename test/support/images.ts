// Client-side steps of the image flows for integration tests: chunked uploads (base64 or
// multipart, any order, concurrent), the one-shot uploadImage, downloads through GET /images and
// fragmentData, and a snapshot of what a failed call must leave unchanged.
import { createHash } from 'node:crypto';
import type { DatanodeRef, Fragment, ImageDetail, UploadSession } from '../../src/client/types.ts';
import type { TestCluster } from './cluster.ts';
import type { GraphQLResponse } from './graphql.ts';
import { fragmentFiles, settleDeletions } from './disk.ts';

export const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export const IMAGE_FIELDS = `name size contentType sha256 fragmentSize fragmentCount createdAt url
  fragments { index size sha256 replicas { id url } }`;
export const SESSION_FIELDS = 'id name size fragmentSize fragmentCount receivedFragments expiresAt';

export const BEGIN = `mutation($i: BeginUploadInput!) { beginUpload(input: $i) { ${SESSION_FIELDS} } }`;
export const SEND = `mutation($u: ID!, $i: Int!, $d: Base64, $s: String) {
  uploadFragment(uploadId: $u, index: $i, data: $d, sha256: $s) { index size sha256 replicas { id url } } }`;
export const SEND_FILE = `mutation($u: ID!, $i: Int!, $f: File, $s: String) {
  uploadFragment(uploadId: $u, index: $i, file: $f, sha256: $s) { index size sha256 replicas { id url } } }`;
export const COMPLETE = `mutation($u: ID!) { completeUpload(uploadId: $u) { ${IMAGE_FIELDS} } }`;
export const ABORT = `mutation($u: ID!) { abortUpload(uploadId: $u) }`;
export const UPLOAD = `query($u: ID!) { upload(id: $u) { ${SESSION_FIELDS} } }`;
export const UPLOAD_IMAGE = `mutation($n: String!, $f: File!, $t: String) { uploadImage(name: $n, file: $f, contentType: $t) { ${IMAGE_FIELDS} } }`;
export const IMAGE = `query($n: String!) { image(name: $n) { ${IMAGE_FIELDS} } }`;
export const FRAGMENT_DATA = `query($n: String!, $i: Int!) { fragmentData(name: $n, index: $i) { index size sha256 data } }`;
export const DELETE = `mutation($n: String!) { deleteImage(name: $n) }`;
export const LIST = `query($first: Int, $after: String, $prefix: String) {
  images(first: $first, after: $after, prefix: $prefix) { totalCount edges { cursor node { name size } } pageInfo { hasNextPage endCursor } } }`;

/** An upload session as SESSION_FIELDS selects it. */
export type Session = UploadSession;

/** An image as IMAGE_FIELDS selects it: the client's ImageDetail, replicas by id and url only. */
export type ImageView = Omit<ImageDetail, 'fragments'> & {
  fragments: (Omit<Fragment, 'replicas'> & { replicas: Omit<DatanodeRef, 'status'>[] })[];
};

/** The bytes of fragment `index` when an image is cut into `fragmentSize` pieces. */
export const sliceOf = (bytes: Buffer, fragmentSize: number, index: number) =>
  bytes.subarray(index * fragmentSize, (index + 1) * fragmentSize);

/** Throws (with the codes) when the response carries errors. */
export function dataOf<T = any>(res: GraphQLResponse<T>): T {
  if (res.errors?.length) throw new Error(res.errors.map((e) => `${e.extensions?.code}: ${e.message}`).join('; '));
  return res.data!;
}

export async function beginUpload(
  cluster: TestCluster,
  input: { name: string; size: number; contentType?: string; sha256?: string },
): Promise<Session> {
  return (await cluster.gql(BEGIN, { i: input })).beginUpload;
}

/** Sends one fragment as base64 (default) or as a multipart file part; the raw response. */
export function sendFragmentRaw(
  cluster: TestCluster,
  uploadId: string,
  index: number,
  data: Uint8Array,
  opts: { sha256?: string; multipart?: boolean } = {},
) {
  if (opts.multipart) {
    return cluster.gql.multipart(SEND_FILE, { u: uploadId, i: index, f: null, s: opts.sha256 ?? null }, { 'variables.f': { data } });
  }
  return cluster.gql.request(SEND, { u: uploadId, i: index, d: Buffer.from(data).toString('base64'), s: opts.sha256 ?? null });
}

export async function sendFragment(
  cluster: TestCluster,
  uploadId: string,
  index: number,
  data: Uint8Array,
  opts: { sha256?: string; multipart?: boolean } = {},
) {
  return dataOf(await sendFragmentRaw(cluster, uploadId, index, data, opts)).uploadFragment as {
    index: number;
    size: number;
    sha256: string;
    replicas: { id: string; url: string }[];
  };
}

export async function completeUpload(cluster: TestCluster, uploadId: string): Promise<ImageView> {
  return (await cluster.gql(COMPLETE, { u: uploadId })).completeUpload;
}

/**
 * A whole chunked upload: begin, every fragment in `order` (default ascending) with up to
 * `concurrency` in flight, complete.
 */
export async function uploadChunked(
  cluster: TestCluster,
  name: string,
  bytes: Buffer,
  opts: { contentType?: string; order?: number[]; concurrency?: number; multipart?: boolean; announceSha256?: boolean } = {},
): Promise<ImageView> {
  const session = await beginUpload(cluster, {
    name,
    size: bytes.length,
    ...(opts.contentType ? { contentType: opts.contentType } : {}),
    ...(opts.announceSha256 ? { sha256: sha256(bytes) } : {}),
  });
  const order = opts.order ?? Array.from({ length: session.fragmentCount }, (_, i) => i);
  const queue = [...order];
  const worker = async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      await sendFragment(cluster, session.id, i, sliceOf(bytes, session.fragmentSize, i), { multipart: opts.multipart });
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 1 }, worker));
  return completeUpload(cluster, session.id);
}

export function uploadImageRaw(cluster: TestCluster, name: string, bytes: Uint8Array, contentType?: string) {
  return cluster.gql.multipart(
    UPLOAD_IMAGE,
    { n: name, f: null, t: contentType ?? null },
    { 'variables.f': { data: bytes, name: 'upload.bin' } },
  );
}

export async function uploadImage(cluster: TestCluster, name: string, bytes: Uint8Array, contentType?: string): Promise<ImageView> {
  return dataOf(await uploadImageRaw(cluster, name, bytes, contentType)).uploadImage;
}

export const imagePath = (cluster: TestCluster, name: string) => `${cluster.url}/images/${encodeURIComponent(name)}`;

/** GET /images/{name}: the response and its whole body. */
export async function download(cluster: TestCluster, name: string, headers: Record<string, string> = {}) {
  const res = await fetch(imagePath(cluster, name), { headers });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

/** Every fragment through fragmentData, decoded. */
export async function fragmentData(cluster: TestCluster, name: string, count: number) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const f = (await cluster.gql(FRAGMENT_DATA, { n: name, i })).fragmentData as {
        index: number;
        size: number;
        sha256: string;
        data: string;
      };
      return { ...f, bytes: Buffer.from(f.data, 'base64') };
    }),
  );
}

/** Every stored image name, in listing order. */
export async function listNames(cluster: TestCluster, prefix?: string): Promise<string[]> {
  const names: string[] = [];
  let after: string | null = null;
  for (;;) {
    const page: any = (await cluster.gql(LIST, { first: 1000, after, prefix: prefix ?? null })).images;
    names.push(...page.edges.map((e: any) => e.node.name));
    if (!page.pageInfo.hasNextPage) return names;
    after = page.pageInfo.endCursor;
  }
}

/** What a failed call must not change: listing, cluster figures and the fragment files on disk. */
export async function stateOf(cluster: TestCluster, uploadIds: string[] = []) {
  await settleDeletions(cluster);
  const figures = (await cluster.gql(
    '{ cluster { imageCount storedBytes underReplicatedFragments } images(first: 1000) { totalCount } }',
  )) as any;
  const uploads = await Promise.all(uploadIds.map(async (u) => (await cluster.gql(UPLOAD, { u })).upload));
  const files = [...(await fragmentFiles(cluster)).entries()].map(([id, nodes]) => `${id}@${nodes.join(',')}`).sort();
  return { names: await listNames(cluster), figures, uploads, files };
}

/** Deterministic pseudo-random bytes (xorshift), so a failure reproduces. */
export function bytesOf(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * A multipart request byte for byte as the graphql-multipart-request-spec's curl example sends
 * it (`curl -F operations=… -F map=… -F 0=@file`): no extra headers but the CSRF-prevention one (curl -H), no Content-Type on the
 * operations and map parts.
 */
export async function curlMultipart(
  cluster: TestCluster,
  query: string,
  variables: Record<string, unknown>,
  path: string,
  data: Uint8Array,
  filename = 'fragment.bin',
) {
  const boundary = '------------------------' + Math.random().toString(16).slice(2).padEnd(16, '0');
  const part = (headers: string, body: Uint8Array | string) => [
    Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`, 'utf8'),
    Buffer.from(body as never),
    Buffer.from('\r\n'),
  ];
  const body = Buffer.concat([
    ...part('Content-Disposition: form-data; name="operations"', JSON.stringify({ query, variables })),
    ...part('Content-Disposition: form-data; name="map"', JSON.stringify({ 0: [path] })),
    ...part(`Content-Disposition: form-data; name="0"; filename="${filename}"\r\nContent-Type: application/octet-stream`, data),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  const res = await fetch(`${cluster.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, accept: '*/*', 'x-graphql-yoga-csrf': '1' },
    body,
  });
  return { status: res.status, ...(await res.json()) } as GraphQLResponse;
}
