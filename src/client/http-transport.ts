// GraphQL over HTTP on node:http with one keep-alive agent per coordinator: JSON requests,
// spec-shaped multipart requests written straight from the caller's buffer (no copy, no
// FormData), and streamed GETs. Given several coordinator URLs, every call goes to the current
// one and moves to the next when the connection fails (see `request`) or the coordinator answers
// that it cannot serve the call yet while another may (see LEAVE_ON).
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { abortError, asClientError, TesseraClientError } from './errors.ts';
import { parseHttpUrlList } from '../shared/flag-values.ts';
import { rawGet, rawTargetOf, type RawResponse } from './raw-get.ts';

export interface TransportOptions {
  /**
   * The coordinator's base URL, e.g. http://127.0.0.1:4000, or several interchangeable ones
   * (an array, or one string with commas): calls move to the next when one cannot be reached.
   */
  url: string | readonly string[];
  /** A request idle for this long (no bytes either way) fails with NETWORK_ERROR. */
  timeoutMs?: number;
  /**
   * With several URLs: a connection not established within this long counts as a refused one,
   * so a host that silently drops packets costs this, not the whole idle timeout.
   */
  connectTimeoutMs?: number;
  /** Sent with every request (e.g. Authorization). */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /**
   * Whether the call may be sent again to the next coordinator after a failure that may have
   * reached the first one (a reset, a proxy's 502/503/504). Default: GETs and GraphQL queries yes,
   * mutations no (a lost answer of beginUpload or deleteImage is the caller's to sort out).
   */
  idempotent?: boolean;
}

/** One file part of a multipart request: `variable` is its path in the operation ("variables.file"). */
export interface FilePart {
  variable: string;
  data: Uint8Array;
  filename?: string;
  contentType?: string;
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; [k: string]: unknown };
}

const ACCEPT = 'application/graphql-response+json, application/json;q=0.9';

interface Endpoint {
  base: URL;
  lib: typeof http | typeof https;
  agent: http.Agent;
  prefix: string;
  timeoutMs: number;
  headers: Record<string, string>;
  /** Set only when there are other coordinators to move to. */
  connectTimeoutMs?: number;
}

/** The error a connection attempt gets when connectTimeoutMs passes: nothing was sent. */
const CONNECT_TIMEOUT = 'ETESSERA_CONNECT_TIMEOUT';

/**
 * Connection errors that mean the request never reached a coordinator: sending it to the next
 * one cannot do anything twice, whatever the call.
 */
const NEVER_SENT = new Set([CONNECT_TIMEOUT, 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

const causeCode = (err: TesseraClientError) => (err.cause as NodeJS.ErrnoException | undefined)?.code;

/**
 * 502, 503 and 504 without a JSON body are a proxy's (nginx in front) saying its coordinator could
 * not be reached or answered nothing; the coordinator's own errors are JSON and never fail over.
 */
function isProxyFailure(res: IncomingMessage): boolean {
  const status = res.statusCode ?? 0;
  if (status !== 502 && status !== 503 && status !== 504) return false;
  return !/json/i.test(res.headers['content-type'] ?? '');
}

/**
 * The coordinator URLs `--url` and TESSERA_URL take (a comma-separated list, or an array), each an
 * http(s) URL, normalized; a BAD_USER_INPUT error naming the culprit for anything else.
 */
export function parseCoordinatorUrls(value: string | readonly string[], flag = '--url'): string[] {
  try {
    return parseHttpUrlList(typeof value === 'string' ? value : value.join(','), flag);
  } catch (err) {
    throw new TesseraClientError('BAD_USER_INPUT', (err as Error).message);
  }
}

/** Sends one request; resolves on the response head (the body is the caller's to read). */
function send(
  to: Endpoint,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders,
  body: Uint8Array[] | undefined,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  const { base, lib, agent, prefix, timeoutMs } = to;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const req = lib.request(
      {
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port,
        method,
        path: prefix + path,
        agent,
        headers: { ...to.headers, ...headers },
      },
      (res) => {
        // The caller reads the body; abort must still cut it, so the listener lives until it ends.
        res.once('close', () => signal?.removeEventListener('abort', onAbort));
        resolve(res);
      },
    );
    const onAbort = () => req.destroy(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${base.origin} within ${timeoutMs} ms`)));
    if (to.connectTimeoutMs !== undefined) watchConnect(req, base.origin, to.connectTimeoutMs);
    req.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(asClientError(err, signal));
    });
    if (!body) return void req.end();
    req.cork();
    for (const chunk of body) req.write(chunk);
    req.end();
    process.nextTick(() => req.uncork());
  });
}

/** Fails `req` with CONNECT_TIMEOUT when its socket is still connecting after `ms` (a pooled, open socket is not watched). */
function watchConnect(req: http.ClientRequest, origin: string, ms: number): void {
  req.once('socket', (socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error(`no connection to ${origin} within ${ms} ms`), { code: CONNECT_TIMEOUT })),
      ms,
    );
    const clear = () => clearTimeout(timer);
    socket.once('connect', clear);
    socket.once('close', clear);
  });
}

async function readBody(res: IncomingMessage, signal?: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res) chunks.push(chunk as Buffer);
  } catch (err) {
    throw asClientError(err, signal);
  }
  return Buffer.concat(chunks);
}

/** The data of a GraphQL answer, or its first error as a TesseraClientError. */
async function graphqlResult<T>(res: IncomingMessage, origin: string, signal?: AbortSignal): Promise<T> {
  const raw = await readBody(res, signal);
  let body: { data?: T; errors?: GraphQLErrorShape[] };
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    const snippet = raw.toString('utf8', 0, 200).trim();
    throw new TesseraClientError('HTTP_ERROR', `HTTP ${res.statusCode} from ${origin}${snippet ? `: ${snippet}` : ''}`, {
      status: res.statusCode,
    });
  }
  const first = body.errors?.[0];
  if (first) {
    // Yoga masks unexpected server errors without a code: call them what they are.
    const code = first.extensions?.code ?? 'INTERNAL_SERVER_ERROR';
    throw new TesseraClientError(code, first.message, { status: res.statusCode, extensions: first.extensions });
  }
  if (body.data == null)
    throw new TesseraClientError('BAD_RESPONSE', `HTTP ${res.statusCode} from ${origin} without data or errors.`, {
      status: res.statusCode,
    });
  return body.data;
}

/** graphql-multipart-request-spec: operations, map, then the file parts, the caller's bytes as they are (never copied into a bigger body). */
function multipartBody(
  query: string,
  variables: Record<string, unknown>,
  files: FilePart[],
): { boundary: string; chunks: Uint8Array[]; length: number } {
  const boundary = `----tessera${randomBytes(16).toString('hex')}`;
  const map: Record<string, string[]> = {};
  files.forEach((f, i) => (map[String(i)] = [f.variable]));
  const field = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const chunks: Uint8Array[] = [];
  let head = field('operations', JSON.stringify({ query, variables })) + field('map', JSON.stringify(map));
  files.forEach((f, i) => {
    const filename = (f.filename ?? `part-${i}`).replace(/["\r\n\\]/g, '_');
    chunks.push(
      Buffer.from(
        `${head}--${boundary}\r\nContent-Disposition: form-data; name="${i}"; filename="${filename}"\r\nContent-Type: ${f.contentType ?? 'application/octet-stream'}\r\n\r\n`,
      ),
    );
    chunks.push(f.data);
    head = '\r\n';
  });
  chunks.push(Buffer.from(`${head}--${boundary}--\r\n`));
  return { boundary, chunks, length: chunks.reduce((n, c) => n + c.byteLength, 0) };
}

/** An error status of a GET as a TesseraClientError: the {code, message} body's when it has one. */
async function getError(res: IncomingMessage, path: string, signal?: AbortSignal): Promise<TesseraClientError> {
  return errorOfAnswer(res.statusCode ?? 0, await readBody(res, signal), `GET ${path}`);
}

/** An error status of a REST route (`what`: "GET /images/…") as a TesseraClientError: the {code, message} body's when it has one. */
function errorOfAnswer(status: number, raw: Buffer, what: string): TesseraClientError {
  try {
    const body = JSON.parse(raw.toString('utf8')) as { code?: string; message?: string };
    if (body.code) return new TesseraClientError(body.code, body.message ?? `HTTP ${status}`, { status });
  } catch {
    // not JSON: the status alone
  }
  return new TesseraClientError('HTTP_ERROR', `HTTP ${status} for ${what}`, { status });
}

/** See the transport's rawGet. */
async function rawGetOn(to: Endpoint, path: string, { signal, headers = {} }: RequestOptions & { headers?: Record<string, string> }) {
  if (to.base.protocol !== 'http:') return 'unsupported' as const;
  let res: RawResponse | 'unsupported';
  try {
    res = await rawGet({
      ...rawTargetOf(to.base),
      path: to.prefix + path,
      headers: { ...to.headers, ...headers },
      timeoutMs: to.timeoutMs,
      signal,
    });
  } catch (err) {
    throw asClientError(err, signal);
  }
  if (res === 'unsupported' || (res.status >= 200 && res.status < 300)) return res;
  const raw = await res.readAll().catch((err: unknown) => {
    throw asClientError(err, signal);
  });
  throw errorOfAnswer(res.status, raw, `GET ${path}`);
}

/**
 * Answers that move calls off the coordinator that gave them (see `failedOn`): it answers so until
 * something of its own passes, while another coordinator may serve the call now. METADATA_UNAVAILABLE:
 * it cannot reach its database; CLUSTER_NOT_READY: it does not know the cluster id yet (it started
 * before any datanode answered it, while another coordinator knows it).
 */
const LEAVE_ON = new Set(['METADATA_UNAVAILABLE', 'CLUSTER_NOT_READY']);

/** GraphQL documents that only read (queries, the shorthand `{ ... }`): safe to send twice. */
const isQuery = (query: string) => /^\s*(?:query\b|\{)/.test(query);

function endpointsOf(
  url: string | readonly string[],
  timeoutMs: number,
  connectTimeoutMs: number,
  headers: Record<string, string>,
): Endpoint[] {
  const urls = parseCoordinatorUrls(url);
  return urls.map((u) => {
    const base = new URL(u);
    const lib = base.protocol === 'https:' ? https : http;
    // keep-alive: an upload is hundreds of requests; a new TCP connection each would dominate small ones.
    const agent = new lib.Agent({ keepAlive: true, scheduling: 'lifo' });
    const prefix = base.pathname.replace(/\/+$/, '');
    return { base, lib, agent, prefix, timeoutMs, headers, connectTimeoutMs: urls.length > 1 ? connectTimeoutMs : undefined };
  });
}

/** Which coordinator calls go to, and the moves to the next one when it fails. */
function createRouter(endpoints: Endpoint[]) {
  const several = endpoints.length > 1;
  const router = {
    several,
    /** The coordinator calls go to; moves on when one fails, never back unless the others fail too. */
    current: 0,
    /** Failovers so far: a caller that saw it change knows its work may sit on another coordinator now. */
    failovers: 0,
    /** Which coordinator answered each streamed GET, so a body cut short moves the right one on. */
    servedBy: new WeakMap<IncomingMessage, number>(),
    originOf: (i: number) => endpoints[i].base.origin,
    /** Moves calls off coordinator `i` (only if no other call has already moved them). */
    leave(i: number) {
      if (!several || router.current !== i) return;
      router.current = (i + 1) % endpoints.length;
      router.failovers++;
    },
    /** Moves calls off the coordinator that served `res` (see `leave`). */
    leaveServer(res: IncomingMessage) {
      const i = router.servedBy.get(res);
      if (i !== undefined) router.leave(i);
    },
    /**
     * `err`, read from the answer `res`. One of LEAVE_ON moves calls off its coordinator first, so
     * the caller's retry (and the next call) go to the next one.
     */
    failedOn(res: IncomingMessage, err: unknown): unknown {
      if (err instanceof TesseraClientError && LEAVE_ON.has(err.code)) router.leaveServer(res);
      return err;
    },
    /** What the caller reads of `res`, its error seen by `failedOn`. */
    answerOf: <T>(res: IncomingMessage, reading: Promise<T>): Promise<T> =>
      reading.catch((err: unknown) => {
        throw router.failedOn(res, err);
      }),
    request,
  };

  /**
   * Sends to the current coordinator. With several, a failure to connect (refused, unreachable,
   * connect timeout) moves to the next and sends again, whatever the call, since nothing reached
   * the first; a failure after sending (reset, idle timeout, a proxy's 502/503/504) moves to the
   * next too, but sends again only an `idempotent` call. Each coordinator is tried at most once
   * per call; with one URL this is `send` and nothing more.
   */
  async function request(
    method: string,
    path: string,
    head: OutgoingHttpHeaders,
    body: Uint8Array[] | undefined,
    { signal, idempotent }: RequestOptions,
  ): Promise<{ res: IncomingMessage; origin: string }> {
    if (!several) return { res: await send(endpoints[0], method, path, head, body, signal), origin: router.originOf(0) };
    const failures: string[] = [];
    let last: TesseraClientError | undefined;
    for (let tried = 0; tried < endpoints.length; tried++) {
      const i = router.current;
      let res: IncomingMessage;
      try {
        res = await send(endpoints[i], method, path, head, body, signal);
      } catch (raw) {
        const err = asClientError(raw, signal);
        if (err.code !== 'NETWORK_ERROR') throw err;
        router.leave(i);
        if (!idempotent && !NEVER_SENT.has(causeCode(err) ?? '')) throw err;
        last = err;
        failures.push(`${router.originOf(i)}: ${err.message}`);
        continue;
      }
      if (!isProxyFailure(res)) {
        router.servedBy.set(res, i);
        return { res, origin: router.originOf(i) };
      }
      res.resume(); // the proxy's error page: nothing to read
      router.leave(i);
      last = new TesseraClientError('HTTP_ERROR', `HTTP ${res.statusCode} from ${router.originOf(i)} (its coordinator is unreachable)`, {
        status: res.statusCode,
      });
      if (!idempotent) throw last;
      failures.push(last.message);
    }
    // Every coordinator failed: say so for each, not only for the last one tried.
    throw new TesseraClientError(last!.code, `No coordinator answered (${failures.join('; ')})`, { status: last!.status, cause: last });
  }
  return router;
}

/** See the transport's put. */
async function putJson<T>(
  router: ReturnType<typeof createRouter>,
  path: string,
  data: Uint8Array,
  headers: OutgoingHttpHeaders,
  { signal, idempotent }: RequestOptions,
): Promise<T> {
  const { res, origin } = await router.request(
    'PUT',
    path,
    { 'content-type': 'application/octet-stream', accept: 'application/json', ...headers, 'content-length': data.byteLength },
    [data],
    { signal, idempotent: router.several && Boolean(idempotent) },
  );
  const raw = await readBody(res, signal);
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) throw router.failedOn(res, errorOfAnswer(status, raw, `PUT ${path}`));
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch {
    throw new TesseraClientError('BAD_RESPONSE', `HTTP ${status} from ${origin} for PUT ${path} is not JSON.`, { status });
  }
}

export function createHttpTransport({ url, timeoutMs = 120_000, connectTimeoutMs = 10_000, headers = {} }: TransportOptions) {
  const endpoints = endpointsOf(url, timeoutMs, connectTimeoutMs, headers);
  const router = createRouter(endpoints);
  const { several, originOf, leave, leaveServer, failedOn, answerOf, request } = router;

  return {
    /** The origin of the coordinator calls go to now. */
    get origin() {
      return originOf(router.current);
    },
    /**
     * Names the cluster in the resume ledger: the one origin, as before, or every origin of the
     * list, sorted, so the same list in any order finds the same uploads.
     */
    clusterKey: several
      ? endpoints
          .map((e) => e.base.origin + e.prefix)
          .sort()
          .join(',')
      : originOf(0),
    /** How many coordinators were given. */
    coordinatorCount: endpoints.length,
    /** Failovers so far (see `failovers`). */
    get failovers() {
      return router.failovers;
    },
    /** Absolute URL of a path on the current coordinator. */
    urlOf: (path: string) => originOf(router.current) + endpoints[router.current].prefix + path,
    /** Moves calls off the coordinator at this URL (a subscription's socket to it failed). */
    leaveUrl: (absolute: string) => leave(endpoints.findIndex((e) => absolute.startsWith(e.base.origin + e.prefix + '/'))),
    /** A streamed GET's body broke off: move calls off the coordinator that served it. */
    lost: leaveServer,

    async graphql<T>(query: string, variables: Record<string, unknown> = {}, { signal, idempotent }: RequestOptions = {}): Promise<T> {
      const body = Buffer.from(JSON.stringify({ query, variables }));
      const { res, origin } = await request(
        'POST',
        '/graphql',
        { 'content-type': 'application/json', accept: ACCEPT, 'content-length': body.length },
        [body],
        { signal, idempotent: several && (idempotent ?? isQuery(query)) },
      );
      return answerOf(res, graphqlResult<T>(res, origin, signal));
    },

    /** graphql-multipart-request-spec: `variables` holds null where a file goes. */
    async graphqlMultipart<T>(
      query: string,
      variables: Record<string, unknown>,
      files: FilePart[],
      { signal, idempotent }: RequestOptions = {},
    ): Promise<T> {
      const { boundary, chunks, length } = multipartBody(query, variables, files);
      // Multipart is a type any web page may post cross-site: the coordinator wants this header to tell us apart.
      const { res, origin } = await request(
        'POST',
        '/graphql',
        {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          accept: ACCEPT,
          'content-length': length,
          'x-graphql-yoga-csrf': '1',
        },
        chunks,
        { signal, idempotent: several && (idempotent ?? isQuery(query)) },
      );
      return answerOf(res, graphqlResult<T>(res, origin, signal));
    },

    /**
     * A PUT of raw bytes to a REST route that answers JSON (PUT /uploads/{id}/fragments/{index}):
     * the parsed answer, or its {code, message} as a TesseraClientError.
     */
    put: <T>(path: string, data: Uint8Array, headers: OutgoingHttpHeaders, options: RequestOptions = {}) =>
      putJson<T>(router, path, data, headers, options),

    /** A GET whose body the caller streams; error statuses are turned into errors here. */
    async get(path: string, { signal, headers = {} }: RequestOptions & { headers?: OutgoingHttpHeaders } = {}): Promise<IncomingMessage> {
      const { res } = await request('GET', path, headers, undefined, { signal, idempotent: true });
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return res;
      throw failedOn(res, await getError(res, path, signal));
    },

    /**
     * A GET read off the socket in large reads (raw-get.ts), for a large body. 'unsupported' with
     * several coordinators (`get` moves between them), over https, or for an answer raw-get does
     * not frame: then use `get`. Error statuses are turned into errors here, as with `get`.
     */
    rawGet: (path: string, options: RequestOptions & { headers?: Record<string, string> } = {}) =>
      several ? Promise.resolve('unsupported' as const) : rawGetOn(endpoints[0], path, options),

    /** Drops the idle keep-alive sockets so a process can exit. */
    close() {
      for (const e of endpoints) e.agent.destroy();
    },
  };
}

export type HttpTransport = ReturnType<typeof createHttpTransport>;
