// The datanode's HTTP surface (node:http, no framework): the routes of the contract's datanode
// table over a fragment store and a health sampler. `main.ts` wraps it in a process.
// Who may ask what is decided here: signed requests (request-signing.ts) or the Bearer secret,
// the cluster id this datanode has joined, and the node id the caller expects to reach.
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { startHealthSampler } from './health.ts';
import type { SystemSample } from './health.ts';
import { CONTENT_SHA256_HEADER, DELETED_IMAGE_HEADER, DELETE_REASON_HEADER, MANIFEST_HEADER, SHA256_HEX_PATTERN, SURPLUS_REPLICA, datanodeErrorStatus, isFragmentId, isImageKey, parseRecord, paths } from '../src/shared/datanode-api.ts';
import type { DatanodeErrorBody, DatanodeErrorCode, DatanodeHealthReport, ImageManifest, RecordKind } from '../src/shared/datanode-api.ts';
import { openRecordStore } from './records.ts';
import type { RecordStore } from './records.ts';
import { isAuthorized } from '../src/shared/cluster-secret.ts';
import { openFragmentStore, UnreadableFragmentError } from './store.ts';
import { loadNodeId } from './identity.ts';
import { CLUSTER_ID_PATTERN, loadClusterId, persistClusterId } from './cluster-id.ts';
import {
  CLUSTER_HEADER,
  NODE_HEADER,
  NONCE_HEADER,
  PROOF_HEADER,
  SIGNED_SCHEME,
  TIME_HEADER,
  answerProof,
  identityProof,
  verifyRequestSignature,
} from '../src/shared/request-signing.ts';
import type { FragmentStore } from './store.ts';

export const DEFAULT_MAX_FRAGMENT_BYTES = 64 * 1024 * 1024;

export interface DatanodeOptions {
  dataDir: string;
  /** undefined only with --insecure: then no request is checked. */
  secret: string | undefined;
  maxFragmentBytes?: number;
  healthIntervalMs?: number;
  logger?: Logger;
  /** Replaces systeminformation in tests that need fixed numbers. */
  sampleSystem?: (dataRealPath: string) => Promise<SystemSample>;
  /** PEM certificate chain and key: the datanode serves HTTPS instead of HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface Datanode {
  server: Server;
  store: FragmentStore;
  records: RecordStore;
  listen(port: number, host?: string): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

/** Longer than the usual 60 s idle timeout of load balancers and clients, so they close first. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** After close(), in-flight requests get this long before their connections are cut. */
const CLOSE_GRACE_MS = 5_000;

type Route =
  | { kind: 'health' }
  | { kind: 'list' }
  | { kind: 'fragment'; rawId: string }
  | { kind: 'records' }
  | { kind: 'record'; recordKind: RecordKind; rawId: string }
  | { kind: 'unknown' };

const allowedMethods: Record<Exclude<Route['kind'], 'unknown'>, string[]> = {
  health: ['GET'],
  list: ['GET'],
  fragment: ['GET', 'PUT', 'DELETE'],
  records: ['GET'],
  record: ['PUT'],
};

/** A manifest of a 4 GiB image in 1 MiB fragments is well under this. */
const MAX_RECORD_BYTES = 32 * 1024 * 1024;

export async function createDatanode({
  dataDir,
  secret,
  maxFragmentBytes = DEFAULT_MAX_FRAGMENT_BYTES,
  healthIntervalMs = 1000,
  logger = pino({ level: 'silent' }),
  sampleSystem,
  tls,
}: DatanodeOptions): Promise<Datanode> {
  const store = await openFragmentStore(dataDir);
  const records = await openRecordStore(dataDir);
  const nodeId = await loadNodeId(dataDir);
  let clusterId = await loadClusterId(dataDir);
  let joining: Promise<void> | undefined;
  const health = startHealthSampler({ dataDir, intervalMs: healthIntervalMs, logger, sample: sampleSystem });

  /** How the caller authenticated: a signed request, the Bearer secret, nothing (or --insecure: 'open'). */
  function authenticate(req: IncomingMessage): 'signed' | 'bearer' | 'open' | undefined {
    if (secret === undefined) return 'open';
    const header = req.headers.authorization ?? '';
    if (header.startsWith(`${SIGNED_SCHEME} `)) {
      const ok = verifyRequestSignature(secret, header.slice(SIGNED_SCHEME.length + 1), {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        time: headerValue(req.headers[TIME_HEADER]) ?? '',
        nonce: headerValue(req.headers[NONCE_HEADER]) ?? '',
        clusterId: headerValue(req.headers[CLUSTER_HEADER]) ?? '',
        nodeId: headerValue(req.headers[NODE_HEADER]) ?? '',
        contentSha256: headerValue(req.headers[CONTENT_SHA256_HEADER]) ?? '',
      });
      return ok ? 'signed' : undefined;
    }
    return isAuthorized(header, secret) ? 'bearer' : undefined;
  }

  /** Joins the caller's cluster if this datanode has none yet (once, durably, before obeying it). */
  async function join(claimed: string): Promise<void> {
    joining ??= persistClusterId(dataDir, claimed).then(() => {
      clusterId = claimed;
      logger.info({ clusterId: claimed }, 'joined cluster');
    });
    try {
      await joining;
    } finally {
      joining = undefined;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = matchRoute(req.url ?? '/');
    const method = req.method ?? 'GET';
    const auth = authenticate(req);
    // Every answer to an authenticated request proves it comes from a holder of the secret, bound
    // to the request's nonce: a server without the secret cannot acknowledge a write it never made.
    const nonce = headerValue(req.headers[NONCE_HEADER]);
    if (secret !== undefined && auth !== undefined && nonce !== undefined) {
      const writeHead = res.writeHead;
      res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
        this.setHeader(PROOF_HEADER, answerProof(secret, nonce, status, nodeId));
        this.setHeader(NODE_HEADER, nodeId);
        return (writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
      } as ServerResponse['writeHead'];
    }

    // Health is open (operators and monitors need no secret), but only a caller with the secret
    // learns who this datanode is, with a proof bound to its nonce.
    if (route.kind === 'health' && method === 'GET') {
      const claimed = headerValue(req.headers[CLUSTER_HEADER]);
      if (auth !== undefined && claimed !== undefined && clusterId === undefined && CLUSTER_ID_PATTERN.test(claimed)) await join(claimed);
      return sendHealth(res, auth === undefined ? undefined : (nonce ?? ''));
    }

    // Checked before anything else, so an unauthenticated caller learns nothing and touches
    // nothing: a PUT body is never read into a file.
    if (auth === undefined) {
      return sendError(res, 'UNAUTHENTICATED', 'missing or wrong cluster secret');
    }
    const refusal = await checkCaller(req, method, auth);
    if (refusal) return sendError(res, refusal.code, refusal.message);
    if (route.kind === 'unknown') return sendError(res, 'ROUTE_NOT_FOUND', `no route ${req.url}`);
    if (!allowedMethods[route.kind].includes(method)) {
      res.setHeader('Allow', allowedMethods[route.kind].join(', '));
      return sendError(res, 'METHOD_NOT_ALLOWED', `${method} is not allowed here`);
    }
    if (route.kind === 'list') return sendJson(res, 200, await store.list());
    if (route.kind === 'health') return sendHealth(res, nonce ?? '');
    if (route.kind === 'records') return sendJson(res, 200, records.list());
    if (route.kind === 'record') return putRecord(route.recordKind, route.rawId, req, res);

    const id = decodeId(route.rawId);
    if (id === undefined || !isFragmentId(id)) {
      return sendError(res, 'INVALID_FRAGMENT_ID', 'a fragment id matches ^[A-Za-z0-9_-]{1,128}$');
    }
    switch (method) {
      case 'GET': {
        let fragment;
        try {
          fragment = await store.get(id);
        } catch (err) {
          if (!(err instanceof UnreadableFragmentError)) throw err;
          logger.error({ id, err: err.message }, 'fragment unreadable');
          return sendError(res, 'FRAGMENT_UNREADABLE', `fragment ${id} cannot be read`);
        }
        if (fragment === undefined) return sendError(res, 'FRAGMENT_NOT_FOUND', `no fragment ${id}`);
        res.writeHead(200, {
          'Content-Type': 'application/octet-stream',
          'Content-Length': fragment.bytes.length,
          [CONTENT_SHA256_HEADER]: fragment.sha256,
        });
        res.end(fragment.bytes);
        return;
      }
      case 'DELETE':
        return deleteFragment(id, req, res);
      case 'PUT':
        return putFragment(id, req, res);
    }
  }

  /**
   * The cluster and node a request names must be this datanode's: a coordinator of another
   * cluster, one without a cluster id (it lost its index and has not regained it) or one that
   * takes this URL for another datanode's is refused, so it cannot write or delete here.
   */
  async function checkCaller(req: IncomingMessage, method: string, auth: 'signed' | 'bearer' | 'open'): Promise<{ code: DatanodeErrorCode; message: string } | undefined> {
    const expectedNode = headerValue(req.headers[NODE_HEADER]);
    if (expectedNode !== undefined && expectedNode !== nodeId) {
      return { code: 'WRONG_NODE', message: `this is not datanode ${expectedNode.slice(0, 64)}: its data dir moved or URLs were swapped` };
    }
    const claimed = headerValue(req.headers[CLUSTER_HEADER]);
    if (claimed !== undefined) {
      if (clusterId === undefined && CLUSTER_ID_PATTERN.test(claimed)) await join(claimed);
      if (claimed !== clusterId) return { code: 'WRONG_CLUSTER', message: 'this datanode belongs to another cluster' };
      return undefined;
    }
    // A coordinator always signs; one that names no cluster has not established its identity.
    if (auth === 'signed' && (method === 'PUT' || method === 'DELETE')) {
      return { code: 'CLUSTER_ID_REQUIRED', message: 'writes and deletes need the cluster id of the coordinator (x-tessera-cluster)' };
    }
    return undefined;
  }

  /** `nonce` is given only for a caller with the secret: then the answer names and proves this node. */
  async function sendHealth(res: ServerResponse, nonce: string | undefined): Promise<void> {
    let sample: SystemSample;
    try {
      sample = await health.current();
    } catch (err) {
      logger.error({ err }, 'no health sample');
      return sendError(res, 'HEALTH_UNAVAILABLE', 'health could not be measured');
    }
    const report: DatanodeHealthReport = { ...sample, ...store.stats() };
    if (nonce !== undefined) {
      Object.assign(report, { nodeId, clusterId: clusterId ?? null });
      if (secret !== undefined) report.proof = identityProof(secret, nonce, nodeId, clusterId ?? null);
    }
    sendJson(res, 200, report);
  }

  /**
   * Never deletes what a live manifest here references, unless the request names that image as
   * deleted (its tombstone is recorded first, durably) or says the copy is a surplus replica: a
   * coordinator with an empty or stale index, which knows neither, cannot wipe stored images.
   */
  async function deleteFragment(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const owner = records.liveOwnerOf(id);
    const deletedImage = headerValue(req.headers[DELETED_IMAGE_HEADER]);
    const reason = headerValue(req.headers[DELETE_REASON_HEADER]);
    if (deletedImage !== undefined && !isImageKey(deletedImage)) return sendError(res, 'INVALID_RECORD', `${DELETED_IMAGE_HEADER} is not an image id`);
    if (owner !== undefined) {
      if (deletedImage === owner) {
        await records.add({ kind: 'tombstone', image: owner, deletedAt: Date.now() });
        logger.info({ image: owner, fragment: id }, 'image tombstoned by a fragment deletion');
      } else if (reason !== SURPLUS_REPLICA) {
        logger.warn({ fragment: id, image: owner, reason }, 'refused to delete a fragment of a live image');
        return sendError(res, 'FRAGMENT_IN_USE', `fragment ${id} belongs to live image ${owner}; a deletion must name it as deleted`);
      }
    } else if (deletedImage !== undefined) {
      // A fragment whose manifest is elsewhere: the tombstone is kept here too (one more copy).
      await records.add({ kind: 'tombstone', image: deletedImage, deletedAt: Date.now() });
    }
    await store.delete(id);
    logger.debug({ fragment: id, reason, image: deletedImage }, 'fragment deleted');
    res.writeHead(204).end();
  }

  async function putRecord(kind: RecordKind, rawId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const image = decodeId(rawId);
    if (image === undefined || !isImageKey(image)) return sendError(res, 'INVALID_RECORD', 'an image id matches ^[A-Za-z0-9_-]{1,128}$');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_RECORD_BYTES) {
        res.setHeader('Connection', 'close');
        return sendError(res, 'PAYLOAD_TOO_LARGE', `a record holds at most ${MAX_RECORD_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    let record;
    try {
      record = parseRecord(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch {
      record = undefined;
    }
    if (!record || record.kind !== kind || record.image !== image) return sendError(res, 'INVALID_RECORD', `the body is not a ${kind} of image ${image}`);
    await records.add(record);
    res.writeHead(201).end();
  }

  async function putFragment(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const manifestHeader = headerValue(req.headers[MANIFEST_HEADER]);
    let manifest: ImageManifest | undefined;
    if (manifestHeader !== undefined) {
      let parsed;
      try {
        parsed = parseRecord(JSON.parse(Buffer.from(manifestHeader, 'base64url').toString('utf8')));
      } catch {
        parsed = undefined;
      }
      if (parsed?.kind !== 'manifest' || !parsed.fragments.some((f) => f.id === id)) {
        return sendError(res, 'INVALID_RECORD', `${MANIFEST_HEADER} is not a manifest of an image holding fragment ${id}`);
      }
      manifest = parsed;
    }
    const expected = headerValue(req.headers[CONTENT_SHA256_HEADER])?.trim().toLowerCase();
    if (expected === undefined || !SHA256_HEX_PATTERN.test(expected)) {
      return sendError(res, 'INVALID_CHECKSUM_HEADER', `${CONTENT_SHA256_HEADER} must be the hex SHA-256 of the body`);
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxFragmentBytes) {
      return sendTooLarge(res);
    }
    // The manifest once the fragment is in place (never naming bytes this datanode failed to
    // keep), its journal sync alongside the fragment's directory sync.
    const result = await store.put(id, req, expected, maxFragmentBytes, manifest && (() => records.add(manifest)));
    if (result.ok) {
      logger.debug({ id, size: result.size }, 'fragment stored');
      res.writeHead(201).end();
      return;
    }
    if (result.reason === 'too-large') return sendTooLarge(res);
    logger.warn({ id, expected, actual: result.sha256 }, 'fragment checksum mismatch');
    return sendError(res, 'CHECKSUM_MISMATCH', `body hashes to ${result.sha256}, header says ${expected}`);
  }

  function sendTooLarge(res: ServerResponse): void {
    // The rest of the body stays unread: close the connection rather than drain it.
    res.setHeader('Connection', 'close');
    sendError(res, 'PAYLOAD_TOO_LARGE', `a fragment holds at most ${maxFragmentBytes} bytes`);
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      // A client that went away mid-PUT lands here too; the store has removed its temp file.
      if (req.destroyed || res.destroyed) {
        logger.debug({ err, method: req.method, url: req.url }, 'request aborted');
        return;
      }
      logger.error({ err, method: req.method, url: req.url }, 'request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL', 'internal error');
      else res.destroy();
    });
  };
  const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, onRequest) : createServer(onRequest);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  return {
    server,
    store,
    records,
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const bound = (server.address() as AddressInfo).port;
          resolve({ port: bound, url: `${tls ? 'https' : 'http'}://${urlHost(host)}:${bound}` });
        });
      });
    },
    close() {
      health.stop();
      return new Promise((resolve) => {
        if (!server.listening) return void records.close().then(resolve, resolve);
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
        server.close(() => {
          clearTimeout(force);
          records.close().then(resolve, resolve);
        });
        server.closeIdleConnections();
      });
    },
  };
}

/** Matches the raw path: URL parsing would fold `/fragments/..` into `/` instead of a 400. */
function matchRoute(url: string): Route {
  const path = url.split('?', 1)[0];
  if (path === paths.health) return { kind: 'health' };
  if (path === paths.fragments) return { kind: 'list' };
  const prefix = `${paths.fragments}/`;
  if (path.startsWith(prefix)) return { kind: 'fragment', rawId: path.slice(prefix.length) };
  if (path === paths.records) return { kind: 'records' };
  for (const recordKind of ['manifest', 'tombstone'] as const) {
    const recordPrefix = `${paths.records}/${recordKind}/`;
    if (path.startsWith(recordPrefix)) return { kind: 'record', recordKind, rawId: path.slice(recordPrefix.length) };
  }
  return { kind: 'unknown' };
}

function decodeId(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined; // malformed percent-encoding
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value; // a repeated checksum header is ambiguous
}

/** A wildcard bind is reachable on loopback; an IPv6 literal needs brackets in a URL. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, code: DatanodeErrorCode, message: string): void {
  const body: DatanodeErrorBody = { code, message };
  sendJson(res, datanodeErrorStatus[code], body);
}
