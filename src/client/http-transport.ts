// GraphQL over HTTP on node:http with one keep-alive agent: JSON requests, spec-shaped multipart
// requests written straight from the caller's buffer (no copy, no FormData), and streamed GETs.
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { abortError, asClientError, TesseraClientError } from './errors.ts';

export interface TransportOptions {
  /** The coordinator's base URL, e.g. http://127.0.0.1:4000 */
  url: string;
  /** A request idle for this long (no bytes either way) fails with NETWORK_ERROR. */
  timeoutMs?: number;
  /** Sent with every request (e.g. Authorization). */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  signal?: AbortSignal;
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
  const status = res.statusCode ?? 0;
  const raw = await readBody(res, signal);
  try {
    const body = JSON.parse(raw.toString('utf8')) as { code?: string; message?: string };
    if (body.code) return new TesseraClientError(body.code, body.message ?? `HTTP ${status}`, { status });
  } catch {
    // not JSON: the status alone
  }
  return new TesseraClientError('HTTP_ERROR', `HTTP ${status} for GET ${path}`, { status });
}

export function createHttpTransport({ url, timeoutMs = 120_000, headers = {} }: TransportOptions) {
  const base = new URL(url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new TesseraClientError('BAD_USER_INPUT', `--url must be http(s)://… (got "${url}").`);
  const lib = base.protocol === 'https:' ? https : http;
  // keep-alive: an upload is hundreds of requests; a new TCP connection each would dominate small ones.
  const agent = new lib.Agent({ keepAlive: true, scheduling: 'lifo' });
  const to: Endpoint = { base, lib, agent, prefix: base.pathname.replace(/\/+$/, ''), timeoutMs, headers };
  const origin = base.origin;

  return {
    origin,
    /** Absolute URL of a path on the coordinator. */
    urlOf: (path: string) => origin + to.prefix + path,

    async graphql<T>(query: string, variables: Record<string, unknown> = {}, { signal }: RequestOptions = {}): Promise<T> {
      const body = Buffer.from(JSON.stringify({ query, variables }));
      const res = await send(
        to,
        'POST',
        '/graphql',
        { 'content-type': 'application/json', accept: ACCEPT, 'content-length': body.length },
        [body],
        signal,
      );
      return graphqlResult<T>(res, origin, signal);
    },

    /** graphql-multipart-request-spec: `variables` holds null where a file goes. */
    async graphqlMultipart<T>(
      query: string,
      variables: Record<string, unknown>,
      files: FilePart[],
      { signal }: RequestOptions = {},
    ): Promise<T> {
      const { boundary, chunks, length } = multipartBody(query, variables, files);
      // Multipart is a type any web page may post cross-site: the coordinator wants this header to tell us apart.
      const res = await send(
        to,
        'POST',
        '/graphql',
        {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          accept: ACCEPT,
          'content-length': length,
          'x-graphql-yoga-csrf': '1',
        },
        chunks,
        signal,
      );
      return graphqlResult<T>(res, origin, signal);
    },

    /** A GET whose body the caller streams; error statuses are turned into errors here. */
    async get(path: string, { signal, headers = {} }: RequestOptions & { headers?: OutgoingHttpHeaders } = {}): Promise<IncomingMessage> {
      const res = await send(to, 'GET', path, headers, undefined, signal);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return res;
      throw await getError(res, path, signal);
    },

    /** Drops the idle keep-alive sockets so a process can exit. */
    close() {
      agent.destroy();
    },
  };
}

export type HttpTransport = ReturnType<typeof createHttpTransport>;
