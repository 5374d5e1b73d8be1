// The bounded GraphQL surface on a real cluster: each Armor limit and our cost refuse with
// QUERY_TOO_COMPLEX, no field suggestions, bounded error messages, and graphql-ws running
// queries and mutations with an error message (not a closed socket) for a bad operation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { tokenFor } from './support/tokens.ts';

let cluster: Awaited<ReturnType<typeof startCluster>>;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
});
afterAll(() => cluster?.close());

const aliases = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

describe('limits over HTTP', () => {
  it.each([
    ['aliases', aliases(16, 'cluster { imageCount }')],
    ['tokens', `{ ${'cluster { imageCount } '.repeat(300)} }`],
    ['fragmentData', aliases(5, 'fragmentData(name: "x", index: 0) { size }')],
    ['rows', aliases(6, 'images(first: 1000) { edges { node { name } } }')],
    // Each of these counts over the whole index: asked again under aliases, the count repeats.
    ['rows', aliases(2, 'cluster { imageCount storedBytes underReplicatedFragments }')],
  ])('refuses too many %s with QUERY_TOO_COMPLEX', async (limit, query) => {
    const res = await cluster.gql.request(query);
    expect(codeOf(res)).toBe('QUERY_TOO_COMPLEX');
    expect(res.errors![0].extensions!.limit).toBe(limit);
    expect(res.data ?? null).toBeNull();
  });

  it("serves the cluster figures the console and the CLI ask, and a datanode's own storedBytes", async () => {
    const figures = `cluster { replicationFactor datanodeCount liveDatanodeCount imageCount storedBytes underReplicatedFragments pendingReplicaDeletions }`;
    expect(codeOf(await cluster.gql.request(`{ ${figures} datanodes { id storedBytes } }`))).toBeUndefined();
    expect(codeOf(await cluster.gql.request(aliases(6, 'datanodes { storedBytes }')))).toBeUndefined();
  });

  it('serves what clients ask: a full page with totalCount, a page down to each image replicas', async () => {
    expect(
      codeOf(
        await cluster.gql.request(
          '{ images(first: 1000) { totalCount edges { node { name size sha256 url createdAt } } pageInfo { endCursor } } }',
        ),
      ),
    ).toBeUndefined();
    expect(
      codeOf(
        await cluster.gql.request('{ images(first: 200) { totalCount edges { node { name fragments { index replicas { id url } } } } } }'),
      ),
    ).toBeUndefined();
  });

  it('refuses an operation past the cost limit (listing rows with fragments)', async () => {
    const res = await cluster.gql.request('{ images(first: 1000) { edges { node { fragments { replicas { id } } } } } }');
    expect(codeOf(res)).toBe('QUERY_TOO_COMPLEX');
    expect(res.errors![0].extensions!.limit).toBe('rows');
  });

  it('gives no field suggestions', async () => {
    const res = await cluster.gql.request('{ imagez { edges { node { name } } } }');
    expect(res.errors![0].message).not.toMatch(/Did you mean/);
  });

  it('never echoes unbounded input in an error', async () => {
    const res = await cluster.gql.request('query($c: String) { images(after: $c) { edges { cursor } } }', { c: 'x'.repeat(100_000) });
    expect(codeOf(res)).toBe('BAD_USER_INPUT');
    expect(res.errors![0].message.length).toBeLessThan(600);
  });

  it('refuses a JSON body past the JSON limit before reading it', async () => {
    const res = await fetch(`${cluster.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ image(name: [${'1 '.repeat(4 * 1024 * 1024)}]) { name } }` }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });
});

describe('graphql-ws', () => {
  const client = () =>
    createClient({
      url: `${cluster.url.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${tokenFor(cluster.url)}` },
    });
  const run = (c: ReturnType<typeof client>, query: string, variables: Record<string, unknown> = {}) =>
    new Promise<{ data?: any; errors?: any[] }>((resolve) => {
      let result: { data?: any; errors?: any[] } = {};
      c.subscribe(
        { query, variables },
        {
          next: (r) => (result = r as never),
          error: (e) => resolve({ errors: Array.isArray(e) ? e : [e] }),
          complete: () => resolve(result),
        },
      );
    });

  it('runs a mutation and a query, and answers a bad operation with an error on the same socket', async () => {
    const c = client();
    try {
      const begun = await run(c, 'mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id } }', { i: { name: 'over-ws', size: 1 } });
      expect(begun.errors).toBeUndefined();
      expect(begun.data.beginUpload.id).toBeTruthy();
      const bad = await run(c, '{ images { ');
      expect(bad.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
      const invalid = await run(c, '{ nope }');
      expect(invalid.errors?.length).toBe(1);
      const tooMany = await run(c, aliases(16, 'cluster { imageCount }'));
      expect(tooMany.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
      const q = await run(c, '{ upload(id: $u) { name } }'.replace('$u', JSON.stringify(begun.data.beginUpload.id)));
      expect(q.data.upload.name).toBe('over-ws');
    } finally {
      await c.dispose();
    }
  });
});
