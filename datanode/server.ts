// The datanode's HTTP surface (node:http, no framework): the routes of the contract's datanode
// table over a fragment store and a health sampler. `main.ts` wraps it in a process.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { startHealthSampler } from './health.ts';
import type { SystemSample } from './health.ts';
import { CONTENT_SHA256_HEADER, SHA256_HEX_PATTERN, datanodeErrorStatus, isFragmentId, paths } from './protocol.ts';
import type { DatanodeErrorBody, DatanodeErrorCode, DatanodeHealthReport } from './protocol.ts';
import { isAuthorized } from './secret.ts';
import { openFragmentStore } from './store.ts';
import { loadNodeId } from './identity.ts';
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
}

export interface Datanode {
  server: Server;
  store: FragmentStore;
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
  | { kind: 'unknown' };

const allowedMethods: Record<Exclude<Route['kind'], 'unknown'>, string[]> = {
  health: ['GET'],
  list: ['GET'],
  fragment: ['GET', 'PUT', 'DELETE'],
};

export async function createDatanode({
  dataDir,
  secret,
  maxFragmentBytes = DEFAULT_MAX_FRAGMENT_BYTES,
  healthIntervalMs = 1000,
  logger = pino({ level: 'silent' }),
  sampleSystem,
}: DatanodeOptions): Promise<Datanode> {
  const store = await openFragmentStore(dataDir);
  const nodeId = await loadNodeId(dataDir);
  const health = startHealthSampler({ dataDir, intervalMs: healthIntervalMs, logger, sample: sampleSystem });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = matchRoute(req.url ?? '/');
    const method = req.method ?? 'GET';

    // The one open route: the coordinator's health monitor and operators need no secret for it.
    if (route.kind === 'health' && method === 'GET') return sendHealth(res);

    // Checked before anything else, so an unauthenticated caller learns nothing and touches
    // nothing: a PUT body is never read into a file.
    if (!isAuthorized(req.headers.authorization, secret)) {
      return sendError(res, 'UNAUTHENTICATED', 'missing or wrong cluster secret');
    }
    if (route.kind === 'unknown') return sendError(res, 'ROUTE_NOT_FOUND', `no route ${req.url}`);
    if (!allowedMethods[route.kind].includes(method)) {
      res.setHeader('Allow', allowedMethods[route.kind].join(', '));
      return sendError(res, 'METHOD_NOT_ALLOWED', `${method} is not allowed here`);
    }
    if (route.kind === 'list') return sendJson(res, 200, await store.list());
    if (route.kind === 'health') return sendHealth(res);

    const id = decodeId(route.rawId);
    if (id === undefined || !isFragmentId(id)) {
      return sendError(res, 'INVALID_FRAGMENT_ID', 'a fragment id matches ^[A-Za-z0-9_-]{1,128}$');
    }
    switch (method) {
      case 'GET': {
        const fragment = await store.get(id);
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
        await store.delete(id);
        res.writeHead(204).end();
        return;
      case 'PUT':
        return putFragment(id, req, res);
    }
  }

  async function sendHealth(res: ServerResponse): Promise<void> {
    let sample: SystemSample;
    try {
      sample = await health.current();
    } catch (err) {
      logger.error({ err }, 'no health sample');
      return sendError(res, 'HEALTH_UNAVAILABLE', 'health could not be measured');
    }
    const report: DatanodeHealthReport = { nodeId, ...sample, ...store.stats() };
    sendJson(res, 200, report);
  }

  async function putFragment(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const expected = headerValue(req.headers[CONTENT_SHA256_HEADER])?.trim().toLowerCase();
    if (expected === undefined || !SHA256_HEX_PATTERN.test(expected)) {
      return sendError(res, 'INVALID_CHECKSUM_HEADER', `${CONTENT_SHA256_HEADER} must be the hex SHA-256 of the body`);
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxFragmentBytes) {
      return sendTooLarge(res);
    }
    const result = await store.put(id, req, expected, maxFragmentBytes);
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

  const server = createServer((req, res) => {
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
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  return {
    server,
    store,
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const bound = (server.address() as AddressInfo).port;
          resolve({ port: bound, url: `http://${urlHost(host)}:${bound}` });
        });
      });
    },
    close() {
      health.stop();
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
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
