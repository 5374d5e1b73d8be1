// The coordinator's HTTP client to datanodes (node:http, one keep-alive agent): the datanode
// protocol seen from the calling side. Retries are the caller's business (it picks another replica).
// Plain node:http rather than got: a fragment PUT is one request object and a write of the
// caller's buffers, with none of got's per-request option merging, hooks and stream wrapping.
import http, { type IncomingHttpHeaders } from 'node:http';
import { CONTENT_SHA256_HEADER, DELETED_IMAGE_HEADER, DELETE_REASON_HEADER, MANIFEST_HEADER, bearer, encodeManifestHeader, paths, type DatanodeErrorBody, type DatanodeErrorCode, type DatanodeHealthReport, type FragmentListing, type ImageManifest, type ImageRecord, type RecordListing } from '../../datanode/protocol.ts';
import { byteLength, type Bytes } from '../bytes.ts';

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
  health(baseUrl: string, timeoutMs: number): Promise<DatanodeHealthReport>;
  /** Fails every request in flight to this datanode now (it went DOWN): callers fall back at once instead of at the deadline. */
  abandon(baseUrl: string): void;
  close(): void;
}

/** A datanode answered with an unexpected status; `code` is its error code (protocol.ts), when it sent one. */
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

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  chunks: Buffer[];
}

export function createDatanodeClient({ secret, timeoutMs = 30_000 }: { secret?: string; timeoutMs?: number }): DatanodeClient {
  // Many 2 MiB fragments go to the same few datanodes: reuse connections.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16, scheduling: 'lifo' });
  const authorization = secret ? bearer(secret) : undefined;
  const origins = new Map<string, URL>();
  const inFlight = new Map<string, Set<http.ClientRequest>>();
  const originOf = (baseUrl: string) => {
    let url = origins.get(baseUrl);
    if (!url) origins.set(baseUrl, (url = new URL(baseUrl)));
    return url;
  };

  /** One request; resolves with the whole answer (any status), rejects on network errors and on `deadlineMs`. */
  function call(method: string, baseUrl: string, path: string, { body, headers = {}, deadlineMs = timeoutMs }: { body?: Bytes; headers?: http.OutgoingHttpHeaders; deadlineMs?: number } = {}): Promise<Answer> {
    const base = originOf(baseUrl);
    return new Promise<Answer>((resolve, reject) => {
      const all: http.OutgoingHttpHeaders = { ...headers };
      if (authorization) all.authorization = authorization;
      if (body !== undefined) all['content-length'] = byteLength(body);
      const req = http.request({ protocol: base.protocol, hostname: base.hostname, port: base.port, method, path: base.pathname.replace(/\/$/, '') + path, agent, headers: all });
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
          resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks });
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
      return JSON.parse(text(expect(await call('GET', baseUrl, paths.health, { deadlineMs: ms }), 'GET', baseUrl, paths.health, 200))) as DatanodeHealthReport;
    },
    close() {
      agent.destroy();
    },
  };
}
