// The bench's own HTTP client: node:http with one keep-alive agent, bodies written as given
// (no copy, no FormData), answers read whole or only counted. The same client drives Tessera and
// the bare proxy, so the client's own cost is the same on both sides of every ratio.
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';

export interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** `headers` go with every request (e.g. the admin token's Authorization). */
export function createHttp(baseUrl: string, maxSockets = 64, defaultHeaders: OutgoingHttpHeaders = {}) {
  const base = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });

  function send(method: string, path: string, headers: OutgoingHttpHeaders, body?: Uint8Array[]): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      headers = { ...defaultHeaders, ...headers };
      if (body) headers = { ...headers, 'content-length': body.reduce((n, b) => n + b.length, 0) };
      const req = http.request({ hostname: base.hostname, port: base.port, method, path, agent, headers }, resolve);
      req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${path}: no answer in 120 s`)));
      req.once('error', reject);
      if (!body) return void req.end();
      req.cork();
      for (const chunk of body) req.write(chunk);
      req.end();
      process.nextTick(() => req.uncork());
    });
  }

  async function request(method: string, path: string, headers: OutgoingHttpHeaders = {}, body?: Uint8Array[]): Promise<Answer> {
    const res = await send(method, path, headers, body);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return { status: res.statusCode ?? 0, headers: res.headers, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) };
  }

  /** GET that only counts the body's bytes (what a download costs the server, not the client). */
  async function drain(path: string): Promise<{ status: number; bytes: number }> {
    const res = await send('GET', path, {});
    let bytes = 0;
    for await (const c of res) bytes += (c as Buffer).length;
    return { status: res.statusCode ?? 0, bytes };
  }

  async function graphql<T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const answer = await request('POST', '/graphql', { 'content-type': 'application/json', accept: 'application/json' }, [
      Buffer.from(JSON.stringify({ query, variables })),
    ]);
    return unwrap<T>(answer);
  }

  /**
   * A graphql-multipart-request-spec request with one file at `variables.<fileVariable>`,
   * shaped like the spec's curl example; the file bytes are written straight from `file`.
   */
  async function graphqlMultipart<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown>,
    fileVariable: string,
    file: Uint8Array,
  ): Promise<T> {
    const boundary = `----tessera-bench-${randomBytes(8).toString('hex')}`;
    const operations = JSON.stringify({ query, variables: { ...variables, [fileVariable]: null } });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.${fileVariable}"]}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const answer = await request(
      'POST',
      '/graphql',
      { 'content-type': `multipart/form-data; boundary=${boundary}`, accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
      [head, file, tail],
    );
    return unwrap<T>(answer);
  }

  return { request, drain, graphql, graphqlMultipart, close: () => agent.destroy() };
}

export type BenchHttp = ReturnType<typeof createHttp>;

/**
 * One client over several servers (coordinators of one database): each request goes to the next
 * server in turn. A request is the unit, so a one-request upload (uploadImage) lands whole on one
 * coordinator, and the fragments of a chunked upload alternate between them, as behind nginx.
 */
export function roundRobin(clients: BenchHttp[]): BenchHttp {
  if (clients.length === 1) return clients[0];
  let turn = 0;
  const next = () => clients[turn++ % clients.length];
  return {
    request: (...args) => next().request(...args),
    drain: (path) => next().drain(path),
    graphql: <T>(query: string, variables?: Record<string, unknown>) => next().graphql<T>(query, variables),
    graphqlMultipart: <T>(query: string, variables: Record<string, unknown>, fileVariable: string, file: Uint8Array) =>
      next().graphqlMultipart<T>(query, variables, fileVariable, file),
    close: () => clients.forEach((c) => c.close()),
  };
}

function unwrap<T>(answer: Answer): T {
  let parsed: { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new Error(`GraphQL answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 300)}`);
  }
  if (parsed.errors?.length) {
    const e = parsed.errors[0];
    throw new Error(`GraphQL error ${e.extensions?.code ?? ''}: ${e.message}`);
  }
  return parsed.data as T;
}
