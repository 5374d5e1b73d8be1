// The coordinator's HTTP client to datanodes (node:http, one keep-alive agent): the datanode
// protocol seen from the calling side. Retries are the caller's business (it picks another replica).
// Plain node:http rather than got: a fragment PUT is one request object and a write of the
// caller's buffers, with none of got's per-request option merging, hooks and stream wrapping.
// The secret never leaves the coordinator: every request is signed, every answer must carry the
// datanode's proof, and each request names the cluster and the node id expected at that URL.
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { CONTENT_SHA256_HEADER, DELETED_IMAGE_HEADER, DELETE_REASON_HEADER, MANIFEST_HEADER, encodeManifestHeader, paths, type DatanodeErrorBody, type DatanodeErrorCode, type DatanodeHealthReport, type FragmentListing, type ImageManifest, type ImageRecord, type RecordListing } from '../shared/datanode-api.ts';
import {
  CLUSTER_HEADER,
  NODE_HEADER,
  NONCE_HEADER,
  PROOF_HEADER,
  SIGNED_SCHEME,
  TIME_HEADER,
  newNonce,
  requestSignature,
  verifyAnswerProof,
  verifyIdentityProof,
} from '../shared/request-signing.ts';
import { byteLength, type Bytes } from '../bytes.ts';

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
  /** The bytes as the chunks they arrived in (no join); undefined on 404. Optional for fakes: getFragment serves instead. */
  getFragmentChunks?(baseUrl: string, id: string): Promise<Buffer[] | undefined>;
  /** `deletedImage`: the image the fragment belonged to was deleted (the datanode records its tombstone). */
  deleteFragment(baseUrl: string, id: string, why?: { reason?: string; deletedImage?: string }): Promise<void>;
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

/** An answer without the datanode's proof: whoever answered does not hold the cluster secret. */
export class UnprovenAnswerError extends Error {
  constructor(method: string, url: string, status: number) {
    super(`${method} ${url} answered ${status} without a valid proof of the cluster secret: not a datanode of this cluster`);
    this.name = 'UnprovenAnswerError';
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  chunks: Buffer[];
  /** The request's nonce, which the identity proof of a /health answer is bound to. */
  nonce: string;
}

export function createDatanodeClient({ secret, timeoutMs = 30_000, ca, identity }: {
  secret?: string;
  timeoutMs?: number;
  /** PEM CA certificate(s) that https:// datanodes' certificates are checked against (besides the system's). */
  ca?: string | Buffer;
  identity?: CallerIdentity;
}): DatanodeClient {
  // Many 2 MiB fragments go to the same few datanodes: reuse connections.
  const agentOptions = { keepAlive: true, maxSockets: 64, maxFreeSockets: 16, scheduling: 'lifo' } as const;
  const agent = new http.Agent(agentOptions);
  const tlsAgent = new https.Agent({ ...agentOptions, ...(ca === undefined ? {} : { ca }) });
  const origins = new Map<string, URL>();
  const inFlight = new Map<string, Set<http.ClientRequest>>();
  const originOf = (baseUrl: string) => {
    let url = origins.get(baseUrl);
    if (!url) origins.set(baseUrl, (url = new URL(baseUrl)));
    return url;
  };

  /** One request; resolves with the whole answer (any status), rejects on network errors and on `deadlineMs`. */
  function call(method: string, baseUrl: string, path: string, { body, headers = {}, deadlineMs = timeoutMs, checkNode = true }: { body?: Bytes; headers?: http.OutgoingHttpHeaders; deadlineMs?: number; checkNode?: boolean } = {}): Promise<Answer> {
    const base = originOf(baseUrl);
    const target = base.pathname.replace(/\/$/, '') + path;
    const nonce = newNonce();
    return new Promise<Answer>((resolve, reject) => {
      const all: http.OutgoingHttpHeaders = { ...headers, [NONCE_HEADER]: nonce };
      const clusterId = identity?.clusterId();
      // /health names whoever answers (the monitor compares); every other route must be the node expected.
      const nodeId = checkNode ? identity?.expectedNodeId(baseUrl) : undefined;
      if (clusterId !== undefined) all[CLUSTER_HEADER] = clusterId;
      if (nodeId !== undefined) all[NODE_HEADER] = nodeId;
      if (secret) {
        const time = String(Date.now());
        all[TIME_HEADER] = time;
        const contentSha256 = typeof headers[CONTENT_SHA256_HEADER] === 'string' ? headers[CONTENT_SHA256_HEADER] : '';
        all.authorization = `${SIGNED_SCHEME} ${requestSignature(secret, { method, path: target, time, nonce, clusterId: clusterId ?? '', nodeId: nodeId ?? '', contentSha256 })}`;
      }
      if (body !== undefined) all['content-length'] = byteLength(body);
      const tls = base.protocol === 'https:';
      const req = (tls ? https : http).request({ protocol: base.protocol, hostname: base.hostname, port: base.port, method, path: target, agent: tls ? tlsAgent : agent, headers: all });
      const timer = setTimeout(() => req.destroy(new Error(`${method} ${baseUrl}${path}: no complete answer within ${deadlineMs} ms`)), deadlineMs);
      let pending = inFlight.get(baseUrl);
      if (!pending) inFlight.set(baseUrl, (pending = new Set()));
      pending.add(req);
      const settle = () => {
        clearTimeout(timer);
        pending.delete(req);
      };
      const fail = (err: Error) => {
        settle();
        reject(err);
      };
      req.once('error', fail);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', fail);
        res.once('aborted', () => fail(new Error(`${method} ${baseUrl}${path}: the answer was cut`)));
        res.once('end', () => {
          settle();
          const status = res.statusCode ?? 0;
          // /health (checkNode false) is judged by its identity proof instead: an answer without it is a fault to show, not a failure.
          if (secret && checkNode && !answerIsProven(res.headers, nonce, status, nodeId) && (status < 300 || status === 404)) {
            // Success, or "not found", from a server without the secret: never taken for a datanode's word.
            reject(new UnprovenAnswerError(method, baseUrl + path, status));
            return;
          }
          resolve({ status, headers: res.headers, chunks, nonce });
        });
      });
      if (body === undefined) return void req.end();
      if (Buffer.isBuffer(body)) return void req.end(body);
      req.cork();
      for (const chunk of body) req.write(chunk);
      req.end();
      process.nextTick(() => req.uncork());
    });
  }

  /** The answer's proof binds it to our nonce and to the node it names (the one expected, when one is). */
  function answerIsProven(headers: IncomingHttpHeaders, nonce: string, status: number, expectedNodeId: string | undefined): boolean {
    const proof = headers[PROOF_HEADER];
    const nodeId = headers[NODE_HEADER];
    if (typeof proof !== 'string' || typeof nodeId !== 'string') return false;
    if (expectedNodeId !== undefined && nodeId !== expectedNodeId && status < 300) return false;
    return verifyAnswerProof(secret!, proof, nonce, status, nodeId);
  }

  /** Keeps nodeId and clusterId only when the datanode proved them (with --insecure: as stated). */
  function provenHealth(a: Answer): HealthAnswer {
    const report = JSON.parse(text(a)) as DatanodeHealthReport;
    const { nodeId, clusterId = null, proof, ...stats } = report;
    if (!secret) return nodeId === undefined ? stats : { ...stats, nodeId, clusterId };
    if (typeof nodeId === 'string' && typeof proof === 'string' && verifyIdentityProof(secret, proof, a.nonce, nodeId, clusterId)) {
      return { ...stats, nodeId, clusterId };
    }
    return { ...stats, identityUnproven: true };
  }

  // One manifest goes to R replicas: encoded once.
  const encoded = new WeakMap<ImageManifest, string>();
  const manifestHeader = (m: ImageManifest) => {
    let value = encoded.get(m);
    if (value === undefined) encoded.set(m, (value = encodeManifestHeader(m)));
    return value;
  };

  const text = (a: Answer) => Buffer.concat(a.chunks).toString('utf8');
  function expect(a: Answer, method: string, baseUrl: string, path: string, ...ok: number[]): Answer {
    if (!ok.includes(a.status)) throw new DatanodeHttpError(method, baseUrl + path, a.status, text(a));
    return a;
  }

  async function getChunks(baseUrl: string, id: string): Promise<Buffer[] | undefined> {
    const path = paths.fragment(id);
    const a = await call('GET', baseUrl, path);
    if (a.status === 404) return undefined;
    return expect(a, 'GET', baseUrl, path, 200).chunks;
  }

  return {
    async putFragment(baseUrl, id, data, sha256, manifest) {
      const path = paths.fragment(id);
      const headers: http.OutgoingHttpHeaders = { [CONTENT_SHA256_HEADER]: sha256, 'content-type': 'application/octet-stream' };
      if (manifest) headers[MANIFEST_HEADER] = manifestHeader(manifest);
      const a = await call('PUT', baseUrl, path, { body: data, headers });
      expect(a, 'PUT', baseUrl, path, 200, 201, 204);
    },
    async getFragment(baseUrl, id) {
      const chunks = await getChunks(baseUrl, id);
      return chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    },
    getFragmentChunks: getChunks,
    abandon(baseUrl) {
      for (const req of inFlight.get(baseUrl) ?? []) req.destroy(new Error(`${baseUrl} is DOWN: request abandoned`));
    },
    async deleteFragment(baseUrl, id, why = {}) {
      const path = paths.fragment(id);
      const headers: http.OutgoingHttpHeaders = {};
      if (why.reason) headers[DELETE_REASON_HEADER] = why.reason;
      if (why.deletedImage) headers[DELETED_IMAGE_HEADER] = why.deletedImage;
      expect(await call('DELETE', baseUrl, path, { headers }), 'DELETE', baseUrl, path, 200, 204);
    },
    async putRecord(baseUrl, record) {
      const path = paths.record(record.kind, record.image);
      const a = await call('PUT', baseUrl, path, { body: Buffer.from(JSON.stringify(record)), headers: { 'content-type': 'application/json' } });
      expect(a, 'PUT', baseUrl, path, 201);
    },
    async listRecords(baseUrl) {
      return JSON.parse(text(expect(await call('GET', baseUrl, paths.records), 'GET', baseUrl, paths.records, 200))) as RecordListing;
    },
    async listFragments(baseUrl) {
      return JSON.parse(text(expect(await call('GET', baseUrl, paths.fragments), 'GET', baseUrl, paths.fragments, 200))) as FragmentListing[];
    },
    async health(baseUrl, ms) {
      return provenHealth(expect(await call('GET', baseUrl, paths.health, { deadlineMs: ms, checkNode: false }), 'GET', baseUrl, paths.health, 200));
    },
    close() {
      agent.destroy();
      tlsAgent.destroy();
    },
  };
}
