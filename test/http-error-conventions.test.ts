// Every HTTP error answers JSON with a code and the conventional status (GraphQL-over-HTTP for
// /graphql, `{code, message}` elsewhere), and no error body carries internals (stack traces,
// absolute paths, the parser's originalError).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
});
afterAll(() => cluster?.close());

const post = (body: string | FormData, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${cluster.url}/graphql`, { method: 'POST', headers: body instanceof FormData ? {} : headers, body });

/** Status, content type and parsed body; fails the test when the body is not JSON. */
async function answer(res: Response) {
  const text = await res.text();
  expect(res.headers.get('content-type'), text).toMatch(/^application\/(graphql-response\+)?json/);
  return { status: res.status, json: JSON.parse(text) };
}

/** A raw HTTP/1.1 exchange, for requests fetch refuses to send (a malformed Host). */
function rawRequest(head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(new URL(cluster.url).port), '127.0.0.1', () => socket.write(head));
    let data = '';
    socket.on('data', (chunk) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('HTTP errors outside GraphQL', () => {
  it('answers an unknown path with 404 {code: NOT_FOUND, message}', async () => {
    for (const path of ['/nothing', '/graphql/extra', '/images']) {
      const { status, json } = await answer(await fetch(`${cluster.url}${path}`));
      expect(status, path).toBe(404);
      expect(json.code).toBe('NOT_FOUND');
      expect(json.message.length).toBeGreaterThan(0);
    }
  });

  it('answers a malformed Host header with 400 BAD_REQUEST, no stack trace and no path', async () => {
    for (const path of ['/graphql', '/images/x', '/healthz']) {
      const body = '{"query":"{ __typename }"}';
      const reply = await rawRequest(
        `POST ${path} HTTP/1.1\r\nHost: [bad\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      expect(reply, path).toMatch(/^HTTP\/1\.1 400 /);
      expect(reply).toMatch(/content-type: application\/json/i);
      const json = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
      expect(json.code).toBe('BAD_REQUEST');
      expect(reply).not.toMatch(/\bat |node_modules|\/work\/|TypeError/);
    }
  });
});

describe('HTTP errors on /graphql', () => {
  it('answers 406 to an Accept it cannot serve, with a GraphQL error body and a code', async () => {
    const { status, json } = await answer(
      await post('{"query":"{ __typename }"}', { 'content-type': 'application/json', accept: 'text/xml' }),
    );
    expect(status).toBe(406);
    expect(json.errors[0].extensions.code).toBe('NOT_ACCEPTABLE');
  });

  it('answers 415 to a body media type it does not read', async () => {
    const { status, json } = await answer(await post('{"query":"{ __typename }"}', { 'content-type': 'text/xml' }));
    expect(status).toBe(415);
    expect(json.errors[0].extensions.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers 405 with a code to a method GraphQL does not take', async () => {
    const res = await fetch(`${cluster.url}/graphql`, { method: 'PUT' });
    const { status, json } = await answer(res);
    expect(status).toBe(405);
    expect(json.errors[0].extensions.code).toBeTruthy();
  });

  it('answers an invalid JSON body with 400 BAD_REQUEST for both media types, without originalError', async () => {
    for (const accept of ['application/json', 'application/graphql-response+json']) {
      const { status, json } = await answer(await post('{"query":', { 'content-type': 'application/json', accept }));
      expect(status, accept).toBe(400);
      expect(json.errors[0].extensions.code).toBe('BAD_REQUEST');
      expect(json.errors[0].extensions.originalError).toBeUndefined();
      expect(JSON.stringify(json)).not.toContain('{\\"query\\":');
    }
  });

  it('answers 400 with a code to a multipart request whose operations or map is not JSON, or missing', async () => {
    const form = (fields: Record<string, string | undefined>) => {
      const f = new FormData();
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) f.append(k, v);
      return f;
    };
    for (const fields of [
      { operations: '{nope', map: '{}' },
      { map: '{}' },
      { operations: '{"query":"{ __typename }"}', map: '{x' },
      { operations: '"a string"', map: '{}' },
    ]) {
      const { status, json } = await answer(await post(form(fields)));
      expect(status, JSON.stringify(fields)).toBe(400);
      expect(json.errors[0].extensions.code).toBe('BAD_REQUEST');
    }
  });

  it('answers a broken multipart body with 400 and a code', async () => {
    const { status, json } = await answer(
      await post('--abc\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}', {
        'content-type': 'multipart/form-data; boundary=abc',
      }),
    );
    expect(status).toBe(400);
    expect(json.errors[0].extensions.code).toBe('BAD_REQUEST');
  });

  it('gives a variable-coercion error a code, null for a non-null variable included', async () => {
    const res = await cluster.gql.request('query($n: String!) { image(name: $n) { name } }', { n: null });
    expect(res.status).toBe(400);
    expect(codeOf(res)).toBe('BAD_USER_INPUT');
  });
});

describe('edges of the GraphQL API', () => {
  it('datanodeHealth with an unknown id answers DATANODE_NOT_FOUND at once, over SSE', async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 20_000);
    const res = await fetch(`${cluster.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { datanodeHealth(id: "nope") { status } }' }),
      signal: controller.signal,
    });
    const text = await res.text(); // ends: the stream is closed after the error
    clearTimeout(timer);
    expect(text).toContain('DATANODE_NOT_FOUND');
  });
});
