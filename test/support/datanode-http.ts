// A raw HTTP client for datanode tests: node:http sends the path exactly as given (fetch and
// got would fold `/fragments/..` into `/`), which the bad-id tests depend on.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
}

export const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** One request to `baseUrl` + `path` (sent verbatim); the body, if any, is sent with a Content-Length. */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  { headers = {}, body }: { headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: bytes,
          json: <T>() => JSON.parse(bytes.toString('utf8')) as T,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A client bound to one datanode and secret: `auth: false` or another secret for the 401 cases. */
export function datanodeClient(baseUrl: string, secret: string | undefined) {
  const authHeaders = (auth: string | false | undefined): Record<string, string> => {
    const key = auth === undefined ? secret : auth;
    return key === false || key === undefined ? {} : { authorization: `Bearer ${key}` };
  };
  return {
    put: (id: string, body: Buffer, opts: { sha?: string | null; auth?: string | false } = {}) =>
      rawRequest(baseUrl, 'PUT', `/fragments/${id}`, {
        headers: {
          ...authHeaders(opts.auth),
          ...(opts.sha === null ? {} : { 'x-content-sha256': opts.sha ?? sha256(body) }),
        },
        body,
      }),
    get: (id: string, opts: { auth?: string | false } = {}) =>
      rawRequest(baseUrl, 'GET', `/fragments/${id}`, { headers: authHeaders(opts.auth) }),
    delete: (id: string, opts: { auth?: string | false } = {}) =>
      rawRequest(baseUrl, 'DELETE', `/fragments/${id}`, { headers: authHeaders(opts.auth) }),
    list: (opts: { auth?: string | false } = {}) => rawRequest(baseUrl, 'GET', '/fragments', { headers: authHeaders(opts.auth) }),
    health: (opts: { auth?: string | false } = {}) => rawRequest(baseUrl, 'GET', '/health', { headers: authHeaders(opts.auth ?? false) }),
    raw: (method: string, path: string, opts: { auth?: string | false; body?: Buffer; headers?: Record<string, string> } = {}) =>
      rawRequest(baseUrl, method, path, { headers: { ...authHeaders(opts.auth), ...opts.headers }, body: opts.body }),
  };
}
