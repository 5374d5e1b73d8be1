// The coordinator's client to datanodes: the datanode protocol seen from the calling side, over
// signed requests (datanode-transport.ts). Retries are the caller's business (it picks another replica).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import {
  CONTENT_SHA256_HEADER,
  DELETED_IMAGE_HEADER,
  DELETE_REASON_HEADER,
  MANIFEST_HEADER,
  encodeManifestHeader,
  paths,
  type DatanodeErrorBody,
  type DeletionBatch,
  type DeletionBatchAnswer,
  type DeletionOutcome,
  type DatanodeErrorCode,
  type DatanodeHealthReport,
  type FragmentListing,
  type ImageManifest,
  type ImageRecord,
  type RecordListing,
} from '../shared/datanode-api.ts';
import { createHash } from 'node:crypto';
import { verifyIdentityProof } from '../shared/request-signing.ts';
import type { Bytes } from '../bytes.ts';
import { createDatanodeTransport, type Answer, type TransportOptions } from './datanode-transport.ts';

export { UnprovenAnswerError } from './datanode-transport.ts';

/** A health answer as the coordinator sees it: nodeId and clusterId only when the datanode proved them. */
export interface HealthAnswer extends DatanodeHealthReport {
  /** The answer carried no valid identity proof (a server without the secret, or an old datanode). */
  identityUnproven?: true;
}

/** What the client tells each datanode about the caller's expectations (coordinator.ts supplies it). */
export interface CallerIdentity {
  /** The coordinator's cluster id; undefined until established (then writes and deletes are refused). */
  clusterId(): string | undefined;
  /** The node id last proven at this URL: a datanode with another id refuses (WRONG_NODE). */
  expectedNodeId(baseUrl: string): string | undefined;
}

export interface DatanodeClient {
  /** With `manifest`: the datanode records it (durably) together with the fragment. */
  putFragment(baseUrl: string, id: string, data: Bytes, sha256: string, manifest?: ImageManifest): Promise<void>;
  /** The bytes; undefined on 404. */
  getFragment(baseUrl: string, id: string): Promise<Buffer | undefined>;
  /**
   * The bytes as the chunks they arrived in (no join); undefined on 404. `onHead`: called when the
   * answer's head arrives (a big body may take long after it), with the SHA-256 the datanode
   * computed of the file it read (X-Content-SHA256), when it sent one. Optional for fakes:
   * getFragment serves instead.
   */
  getFragmentChunks?(baseUrl: string, id: string, onHead?: (sha256?: string) => void): Promise<Buffer[] | undefined>;
  /** `deletedImage`: the image the fragment belonged to was deleted (the datanode records its tombstone). */
  deleteFragment(baseUrl: string, id: string, why?: { reason?: string; deletedImage?: string }): Promise<void>;
  /**
   * Many tombstones and fragment deletions in one request (POST /deletions): the tombstones are
   * durable before it answers; one outcome per fragment, in order.
   */
  deleteBatch(baseUrl: string, batch: DeletionBatch): Promise<DeletionOutcome[]>;
  /** Records a manifest or tombstone, durably. */
  putRecord(baseUrl: string, record: ImageRecord): Promise<void>;
  listRecords(baseUrl: string): Promise<RecordListing>;
  listFragments(baseUrl: string): Promise<FragmentListing[]>;
  health(baseUrl: string, timeoutMs: number): Promise<HealthAnswer>;
  /** Fails every request in flight to this datanode now (it went DOWN): callers fall back at once instead of at the deadline. */
  abandon(baseUrl: string): void;
  close(): void;
}

/** A datanode answered with an unexpected status; `code` is its error code (shared/datanode-api.ts), when it sent one. */
export class DatanodeHttpError extends Error {
  readonly code: DatanodeErrorCode | undefined;
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    body: string,
  ) {
    super(`${method} ${url} answered ${status}${body ? `: ${body.slice(0, 200)}` : ''}`);
    this.name = 'DatanodeHttpError';
    try {
      this.code = (JSON.parse(body) as Partial<DatanodeErrorBody>).code;
    } catch {
      this.code = undefined;
    }
  }
}

/** The datanode refused a PUT because the bytes do not hash to the X-Content-SHA256 they came with. */
export const isChecksumMismatch = (err: unknown) => err instanceof DatanodeHttpError && err.code === 'CHECKSUM_MISMATCH';

/** The replica's file is there but the datanode could not read it (5xx, I/O error): a bad replica, not a dead node. */
export const isUnreadable = (err: unknown) => err instanceof DatanodeHttpError && err.status >= 500 && err.status !== 503;

/** Keeps nodeId and clusterId only when the datanode proved them (with --insecure: as stated). */
function provenHealth(secret: string | undefined, a: Answer): HealthAnswer {
  const report = JSON.parse(text(a)) as DatanodeHealthReport;
  const { nodeId, clusterId = null, proof, ...stats } = report;
  if (!secret) return nodeId === undefined ? stats : { ...stats, nodeId, clusterId };
  if (typeof nodeId === 'string' && typeof proof === 'string' && verifyIdentityProof(secret, proof, a.nonce, nodeId, clusterId)) {
    return { ...stats, nodeId, clusterId };
  }
  return { ...stats, identityUnproven: true };
}

const text = (a: Answer) => Buffer.concat(a.chunks).toString('utf8');

function expect(a: Answer, method: string, baseUrl: string, path: string, ...ok: number[]): Answer {
  if (!ok.includes(a.status)) throw new DatanodeHttpError(method, baseUrl + path, a.status, text(a));
  return a;
}

type Call = ReturnType<typeof createDatanodeTransport>['call'];

/** POST /deletions; undefined when the datanode has no such route (it predates batches). */
async function postDeletions(call: Call, baseUrl: string, batch: DeletionBatch): Promise<DeletionOutcome[] | undefined> {
  const path = paths.deletions;
  const body = Buffer.from(JSON.stringify(batch));
  // The body's hash goes into the signature: the datanode checks the body against it.
  const headers = { 'content-type': 'application/json', [CONTENT_SHA256_HEADER]: createHash('sha256').update(body).digest('hex') };
  const a = await call('POST', baseUrl, path, { body, headers });
  if (a.status === 404 && new DatanodeHttpError('POST', baseUrl + path, a.status, text(a)).code === 'ROUTE_NOT_FOUND') return undefined;
  const { fragments } = JSON.parse(text(expect(a, 'POST', baseUrl, path, 200))) as Partial<DeletionBatchAnswer>;
  if (
    !Array.isArray(fragments) ||
    fragments.length !== batch.fragments.length ||
    !fragments.every((o) => o === 'deleted' || o === 'in-use')
  )
    throw new DatanodeHttpError('POST', baseUrl + path, a.status, 'the answer does not give one outcome per fragment');
  return fragments;
}

/** A batch as single requests (PUT /records/tombstone/{image}, DELETE /fragments/{id}), for a datanode without POST /deletions. */
async function deleteOneByOne(client: DatanodeClient, baseUrl: string, batch: DeletionBatch): Promise<DeletionOutcome[]> {
  await Promise.all(batch.tombstones.map((t) => client.putRecord(baseUrl, t)));
  return Promise.all(
    batch.fragments.map((f) =>
      client.deleteFragment(baseUrl, f.id, { reason: f.reason, deletedImage: f.deletedImage }).then(
        (): DeletionOutcome => 'deleted',
        (err: unknown): DeletionOutcome => {
          if (err instanceof DatanodeHttpError && err.code === 'FRAGMENT_IN_USE') return 'in-use';
          throw err;
        },
      ),
    ),
  );
}

export function createDatanodeClient(options: TransportOptions): DatanodeClient {
  const { call, abandon, close } = createDatanodeTransport(options);
  // One manifest goes to R replicas: encoded once.
  const encoded = new WeakMap<ImageManifest, string>();
  const manifestHeader = (m: ImageManifest) => {
    let value = encoded.get(m);
    if (value === undefined) encoded.set(m, (value = encodeManifestHeader(m)));
    return value;
  };

  async function getChunks(baseUrl: string, id: string, onHead?: (sha256?: string) => void): Promise<Buffer[] | undefined> {
    const path = paths.fragment(id);
    const reported = (h: IncomingHttpHeaders) => {
      const sha256 = h[CONTENT_SHA256_HEADER];
      return typeof sha256 === 'string' ? sha256 : undefined;
    };
    const a = await call('GET', baseUrl, path, { onHead: onHead && ((h) => onHead(reported(h))) });
    if (a.status === 404) return undefined;
    return expect(a, 'GET', baseUrl, path, 200).chunks;
  }

  const client: DatanodeClient = {
    async putFragment(baseUrl, id, data, sha256, manifest) {
      const path = paths.fragment(id);
      const headers: OutgoingHttpHeaders = { [CONTENT_SHA256_HEADER]: sha256, 'content-type': 'application/octet-stream' };
      if (manifest) headers[MANIFEST_HEADER] = manifestHeader(manifest);
      const a = await call('PUT', baseUrl, path, { body: data, headers });
      expect(a, 'PUT', baseUrl, path, 200, 201, 204);
    },
    async getFragment(baseUrl, id) {
      const chunks = await getChunks(baseUrl, id);
      return chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    },
    getFragmentChunks: getChunks,
    abandon,
    async deleteFragment(baseUrl, id, why = {}) {
      const path = paths.fragment(id);
      const headers: OutgoingHttpHeaders = {};
      if (why.reason) headers[DELETE_REASON_HEADER] = why.reason;
      if (why.deletedImage) headers[DELETED_IMAGE_HEADER] = why.deletedImage;
      expect(await call('DELETE', baseUrl, path, { headers }), 'DELETE', baseUrl, path, 200, 204);
    },
    async deleteBatch(baseUrl, batch) {
      return (await postDeletions(call, baseUrl, batch)) ?? deleteOneByOne(client, baseUrl, batch);
    },
    async putRecord(baseUrl, record) {
      const path = paths.record(record.kind, record.image);
      const a = await call('PUT', baseUrl, path, {
        body: Buffer.from(JSON.stringify(record)),
        headers: { 'content-type': 'application/json' },
      });
      expect(a, 'PUT', baseUrl, path, 201);
    },
    async listRecords(baseUrl) {
      return JSON.parse(text(expect(await call('GET', baseUrl, paths.records), 'GET', baseUrl, paths.records, 200))) as RecordListing;
    },
    async listFragments(baseUrl) {
      return JSON.parse(
        text(expect(await call('GET', baseUrl, paths.fragments), 'GET', baseUrl, paths.fragments, 200)),
      ) as FragmentListing[];
    },
    async health(baseUrl, ms) {
      return provenHealth(
        options.secret,
        expect(await call('GET', baseUrl, paths.health, { deadlineMs: ms, checkNode: false }), 'GET', baseUrl, paths.health, 200),
      );
    },
    close,
  };
  return client;
}
