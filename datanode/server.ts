// The datanode's HTTP surface (node:http, no framework): the routes of the contract's datanode
// table over a fragment store and a health sampler. `main.ts` wraps it in a process. Who may ask
// what is decided in caller-gate.ts; each route's handler lives in a file of its own.
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { startHealthSampler } from './health.ts';
import type { SystemSample } from './health.ts';
import { isFragmentId } from '../src/shared/datanode-api.ts';
import { CLUSTER_HEADER, NONCE_HEADER } from '../src/shared/request-signing.ts';
import { openRecordStore } from './records.ts';
import type { RecordStore } from './records.ts';
import { openFragmentStore } from './store.ts';
import type { FragmentStore } from './store.ts';
import { loadNodeId } from './identity.ts';
import { loadClusterId } from './cluster-id.ts';
import { CallerGate } from './caller-gate.ts';
import { FenceKeeper, loadFence } from './fence.ts';
import type { DatanodeContext } from './datanode-context.ts';
import { deleteFragment, getFragment, putFragment } from './fragment-routes.ts';
import { postDeletions } from './deletion-routes.ts';
import { sendHealth } from './health-route.ts';
import { putRecord } from './record-routes.ts';
import { headerValue, sendError, sendJson } from './replies.ts';
import { allowedMethods, decodeId, matchRoute } from './routes.ts';

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

export async function createDatanode({
  dataDir,
  secret,
  maxFragmentBytes = DEFAULT_MAX_FRAGMENT_BYTES,
  healthIntervalMs = 1000,
  logger = pino({ level: 'silent' }),
  sampleSystem,
  tls,
}: DatanodeOptions): Promise<Datanode> {
  const store = await openFragmentStore(dataDir, logger);
  const records = await openRecordStore(dataDir);
  const gate = new CallerGate(
    dataDir,
    secret,
    await loadNodeId(dataDir),
    await loadClusterId(dataDir),
    logger,
    new FenceKeeper(dataDir, await loadFence(dataDir)),
  );
  const health = startHealthSampler({ dataDir, intervalMs: healthIntervalMs, logger, sample: sampleSystem });
  const ctx: DatanodeContext = { store, records, health, gate, logger, maxFragmentBytes };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(ctx, req, res).catch((err: unknown) => {
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
      const closeStores = () => Promise.allSettled([records.close(), store.close()]).then(() => undefined);
      return new Promise((resolve) => {
        if (!server.listening) return void closeStores().then(resolve);
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
        server.close(() => {
          clearTimeout(force);
          void closeStores().then(resolve);
        });
        server.closeIdleConnections();
      });
    },
  };
}

async function handle(ctx: DatanodeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { gate } = ctx;
  const route = matchRoute(req.url ?? '/');
  const method = req.method ?? 'GET';
  const auth = gate.authenticate(req);
  const nonce = headerValue(req.headers[NONCE_HEADER]);
  if (auth !== undefined && nonce !== undefined) gate.proveAnswers(res, nonce);

  // Health is open (operators and monitors need no secret), but only a caller with the secret
  // learns who this datanode is, with a proof bound to its nonce.
  if (route.kind === 'health' && method === 'GET') {
    if (auth !== undefined) await gate.joinIfUnset(headerValue(req.headers[CLUSTER_HEADER]));
    // A new leader's health samples carry its token: from its first sample on, a former leader's deletes here are refused.
    if (auth !== undefined) await gate.checkFence(req, method);
    return sendHealth(ctx, res, auth === undefined ? undefined : (nonce ?? ''));
  }

  // Checked before anything else, so an unauthenticated caller learns nothing and touches
  // nothing: a PUT body is never read into a file.
  if (auth === undefined) {
    return sendError(res, 'UNAUTHENTICATED', 'missing or wrong cluster secret');
  }
  const refusal = (await gate.check(req, method, auth)) ?? (await gate.checkFence(req, method));
  if (refusal) return sendError(res, refusal.code, refusal.message);
  if (route.kind === 'unknown') return sendError(res, 'ROUTE_NOT_FOUND', `no route ${req.url}`);
  if (!allowedMethods[route.kind].includes(method)) {
    res.setHeader('Allow', allowedMethods[route.kind].join(', '));
    return sendError(res, 'METHOD_NOT_ALLOWED', `${method} is not allowed here`);
  }
  if (route.kind === 'list') return sendJson(res, 200, await ctx.store.list());
  if (route.kind === 'health') return sendHealth(ctx, res, nonce ?? '');
  if (route.kind === 'records') return sendJson(res, 200, ctx.records.list());
  if (route.kind === 'record') return putRecord(ctx, route.recordKind, route.rawId, req, res);
  if (route.kind === 'deletions') return postDeletions(ctx, req, res);

  const id = decodeId(route.rawId);
  if (id === undefined || !isFragmentId(id)) {
    return sendError(res, 'INVALID_FRAGMENT_ID', 'a fragment id matches ^[A-Za-z0-9_-]{1,128}$');
  }
  if (method === 'GET') return getFragment(ctx, id, res);
  if (method === 'DELETE') return deleteFragment(ctx, id, req, res);
  return putFragment(ctx, id, req, res);
}

/** A wildcard bind is reachable on loopback; an IPv6 literal needs brackets in a URL. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
