// Signed HTTP requests from the coordinator to datanodes (node:http, keep-alive agents). Plain
// node:http rather than got: a fragment PUT is one request object and a write of the caller's
// buffers, with none of got's per-request option merging, hooks and stream wrapping. The secret
// never leaves the coordinator: every request is signed, every answer must carry the datanode's
// proof, and each request names the cluster and the node id expected at that URL.
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { CONTENT_SHA256_HEADER } from '../shared/datanode-api.ts';
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
} from '../shared/request-signing.ts';
import { FENCE_HEADER, currentFence } from '../shared/fence.ts';
import { byteLength, type Bytes } from '../bytes.ts';
import type { CallerIdentity } from './datanode-client.ts';

/** An answer without the datanode's proof: whoever answered does not hold the cluster secret. */
export class UnprovenAnswerError extends Error {
  constructor(method: string, url: string, status: number) {
    super(`${method} ${url} answered ${status} without a valid proof of the cluster secret: not a datanode of this cluster`);
    this.name = 'UnprovenAnswerError';
  }
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  chunks: Buffer[];
  /** The request's nonce, which the identity proof of a /health answer is bound to. */
  nonce: string;
}

export interface TransportOptions {
  secret?: string;
  timeoutMs?: number;
  /** PEM CA certificate(s) that https:// datanodes' certificates are checked against (besides the system's). */
  ca?: string | Buffer;
  identity?: CallerIdentity;
}

export interface CallOptions {
  body?: Bytes;
  headers?: http.OutgoingHttpHeaders;
  deadlineMs?: number;
  /** False for /health, which names whoever answers (the monitor compares). */
  checkNode?: boolean;
  /** Called with the answer's headers when its head arrives (the body may still be on its way). */
  onHead?: (headers: IncomingHttpHeaders) => void;
}

/**
 * The request's head as a flat [name, value, ...] list: its Host, `headers`, its nonce, the
 * cluster and node expected, (with a secret) its signature and (with a body) its length. A list
 * goes into the request head as it is; an object is copied header by header through setHeader
 * into the request's own table first, which cost 40 to 85 µs of the coordinator's CPU per 100 KB
 * fragment PUT (of about 450). Names are lowercase, each given once.
 */
function signedHeaders(
  secret: string | undefined,
  method: string,
  target: string,
  host: string,
  headers: http.OutgoingHttpHeaders,
  nonce: string,
  clusterId: string | undefined,
  nodeId: string | undefined,
  body: Bytes | undefined,
): string[] {
  // A request made by a background pass carries its fencing token (shared/fence.ts): a datanode
  // that has seen a newer leader's token refuses it.
  const fence = currentFence();
  const all = ['host', host];
  for (const name in headers) {
    const value = headers[name];
    if (Array.isArray(value)) for (const v of value) all.push(name, v);
    else if (value !== undefined) all.push(name, String(value));
  }
  all.push(NONCE_HEADER, nonce);
  if (clusterId !== undefined) all.push(CLUSTER_HEADER, clusterId);
  if (nodeId !== undefined) all.push(NODE_HEADER, nodeId);
  if (fence !== undefined) all.push(FENCE_HEADER, fence);
  if (body !== undefined) all.push('content-length', String(byteLength(body)));
  if (secret) {
    const time = String(Date.now());
    all.push(TIME_HEADER, time);
    const contentSha256 = typeof headers[CONTENT_SHA256_HEADER] === 'string' ? headers[CONTENT_SHA256_HEADER] : '';
    all.push(
      'authorization',
      `${SIGNED_SCHEME} ${requestSignature(secret, { method, path: target, time, nonce, clusterId: clusterId ?? '', nodeId: nodeId ?? '', contentSha256, fence })}`,
    );
  }
  return all;
}

/** The answer's proof binds it to our nonce and to the node it names (the one expected, when one is). */
function answerIsProven(
  secret: string,
  headers: IncomingHttpHeaders,
  nonce: string,
  status: number,
  expectedNodeId: string | undefined,
): boolean {
  const proof = headers[PROOF_HEADER];
  const nodeId = headers[NODE_HEADER];
  if (typeof proof !== 'string' || typeof nodeId !== 'string') return false;
  if (expectedNodeId !== undefined && nodeId !== expectedNodeId && status < 300) return false;
  return verifyAnswerProof(secret, proof, nonce, status, nodeId);
}

/** Writes the body: one buffer, or the chunks it arrived in (corked, so they leave in one writev). */
function sendBody(req: http.ClientRequest, body: Bytes | undefined): void {
  if (body === undefined) return void req.end();
  if (Buffer.isBuffer(body)) return void req.end(body);
  req.cork();
  for (const chunk of body) req.write(chunk);
  req.end();
  process.nextTick(() => req.uncork());
}

/** Signed requests to datanodes over keep-alive agents, each answer checked for the datanode's proof. */
export function createDatanodeTransport({ secret, timeoutMs = 30_000, ca, identity }: TransportOptions) {
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
  function call(
    method: string,
    baseUrl: string,
    path: string,
    { body, headers = {}, deadlineMs = timeoutMs, checkNode = true, onHead }: CallOptions = {},
  ): Promise<Answer> {
    const base = originOf(baseUrl);
    const target = base.pathname.replace(/\/$/, '') + path;
    const nonce = newNonce();
    return new Promise<Answer>((resolve, reject) => {
      // /health names whoever answers (the monitor compares); every other route must be the node expected.
      const nodeId = checkNode ? identity?.expectedNodeId(baseUrl) : undefined;
      const all = signedHeaders(secret, method, target, base.host, headers, nonce, identity?.clusterId(), nodeId, body);
      const tls = base.protocol === 'https:';
      const req = (tls ? https : http).request({
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port,
        method,
        path: target,
        agent: tls ? tlsAgent : agent,
        headers: all,
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`${method} ${baseUrl}${path}: no complete answer within ${deadlineMs} ms`)),
        deadlineMs,
      );
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
        onHead?.(res.headers);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', fail);
        res.once('aborted', () => fail(new Error(`${method} ${baseUrl}${path}: the answer was cut`)));
        res.once('end', () => {
          settle();
          const status = res.statusCode ?? 0;
          // /health (checkNode false) is judged by its identity proof instead: an answer without it is a fault to show, not a failure.
          if (secret && checkNode && !answerIsProven(secret, res.headers, nonce, status, nodeId) && (status < 300 || status === 404)) {
            // Success, or "not found", from a server without the secret: never taken for a datanode's word.
            reject(new UnprovenAnswerError(method, baseUrl + path, status));
            return;
          }
          resolve({ status, headers: res.headers, chunks, nonce });
        });
      });
      sendBody(req, body);
    });
  }

  return {
    call,
    /** Cuts the requests in flight to a datanode (it is DOWN: a partitioned one hangs rather than refuses). */
    abandon(baseUrl: string) {
      for (const req of inFlight.get(baseUrl) ?? []) req.destroy(new Error(`${baseUrl} is DOWN: request abandoned`));
    },
    close() {
      agent.destroy();
      tlsAgent.destroy();
    },
  };
}
