// The role matrix: every root field of the served schema (enumerated from it, so a new operation
// without a rule fails here) and GET and DELETE /images, run without a token, with a read, write and admin
// token and with the cluster secret. Each answers exactly as the policy below says: allowed,
// UNAUTHENTICATED (401) or FORBIDDEN (403). Also over graphql-ws.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getNamedType,
  isInputObjectType,
  isNonNullType,
  isObjectType,
  isAbstractType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
} from 'graphql';
import { schema } from '../src/schema/index.ts';
import { ruleFor } from '../src/auth/rules.ts';
import { startCluster, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { rawFetch } from './support/tokens.ts';
import { subscribeWs } from './support/subscriptions.ts';
import { uploadImage } from './support/images.ts';
import WebSocket from 'ws';

type Who = 'none' | 'read' | 'write' | 'admin' | 'cluster';
type Need = 'read' | 'write' | 'admin';

/** The policy, written out by hand: the least role each operation needs. */
const POLICY: Record<string, Need> = {
  'Query.images': 'read',
  'Query.image': 'read',
  'Query.fragmentData': 'read',
  'Query.upload': 'read',
  'Query.datanodes': 'read',
  'Query.cluster': 'read',
  'Query.tokens': 'admin',
  'Mutation.beginUpload': 'write',
  'Mutation.uploadFragment': 'write',
  'Mutation.completeUpload': 'write',
  'Mutation.abortUpload': 'write',
  'Mutation.uploadImage': 'write',
  'Mutation.deleteImage': 'write',
  'Mutation.registerDatanode': 'admin',
  'Mutation.drainDatanode': 'admin',
  'Mutation.removeDatanode': 'admin',
  'Mutation.createToken': 'admin',
  'Mutation.revokeToken': 'admin',
  'Subscription.clusterEvents': 'read',
  'Subscription.datanodeHealth': 'read',
  'GET /images/{name}': 'read',
  'DELETE /images/{name}': 'write',
};
/** The cluster secret (datanodes) may do only these. */
const CLUSTER_MAY = new Set(['Mutation.registerDatanode', 'Mutation.drainDatanode', 'Mutation.removeDatanode']);
const RANK: Record<Need, number> = { read: 0, write: 1, admin: 2 };

function expected(who: Who, op: string): 'allowed' | 'UNAUTHENTICATED' | 'FORBIDDEN' {
  if (who === 'none') return 'UNAUTHENTICATED';
  if (who === 'cluster') return CLUSTER_MAY.has(op) ? 'allowed' : 'FORBIDDEN';
  return RANK[who] >= RANK[POLICY[op]] ? 'allowed' : 'FORBIDDEN';
}

/** A value of the right type for an argument (it need not make sense: only the auth outcome is looked at). */
function dummy(type: GraphQLInputType, field: string): unknown {
  const named = getNamedType(type);
  if (isInputObjectType(named)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(named.getFields())) if (isNonNullType(f.type)) out[f.name] = dummy(f.type, field);
    if ('name' in out) out.name = `role-matrix/${field}/${Math.random().toString(36).slice(2)}`;
    return out;
  }
  switch (named.name) {
    case 'Int':
    case 'SafeInt':
      return 1;
    case 'Boolean':
      return true;
    case 'Base64':
      return 'AA==';
    case 'File':
      return null; // cannot go in JSON: a variable error after the auth check, for those allowed
    case 'Role':
      return 'read';
    default:
      return `role-matrix-${field}`;
  }
}

/** One operation that selects only `field`, with every argument as a variable. */
function operationFor(kind: 'query' | 'mutation' | 'subscription', field: GraphQLField<unknown, unknown>) {
  const args = field.args as readonly GraphQLArgument[];
  const vars = args.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ');
  const call = args.length ? `(${args.map((a) => `${a.name}: $${a.name}`).join(', ')})` : '';
  const named = getNamedType(field.type);
  const selection = isObjectType(named) || isAbstractType(named) ? ' { __typename }' : '';
  const variables = Object.fromEntries(args.map((a) => [a.name, dummy(a.type, field.name)]));
  return { query: `${kind}${vars ? `(${vars})` : ''} { ${field.name}${call}${selection} }`, variables };
}

const ROOTS = [
  ['Query', 'query', schema.getQueryType()],
  ['Mutation', 'mutation', schema.getMutationType()],
  ['Subscription', 'subscription', schema.getSubscriptionType()],
] as const;
const OPERATIONS = ROOTS.flatMap(([type, kind, root]) =>
  Object.values(root!.getFields()).map((f) => ({ op: `${type}.${f.name}`, type, kind, ...operationFor(kind, f) })),
);

let cluster: TestCluster;
const auth: Record<Who, string | undefined> = {
  none: undefined,
  read: undefined,
  write: undefined,
  admin: undefined,
  cluster: `Bearer ${TEST_SECRET}`,
};
const WHO: Who[] = ['none', 'read', 'write', 'admin', 'cluster'];

beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
  auth.admin = `Bearer ${cluster.adminToken}`;
  for (const role of ['read', 'write'] as const) {
    const { createToken } = await cluster.gql(
      `mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret token { role } } }`,
      { n: role, r: role },
    );
    expect(createToken.token.role).toBe(role);
    auth[role] = `Bearer ${createToken.secret}`;
  }
  await uploadImage(cluster, 'matrix.bin', Buffer.from('the role matrix'));
});
afterAll(() => cluster?.close());

/** 'allowed', or the auth code an answer carries; with the HTTP status it came with. */
async function outcome(who: Who, o: (typeof OPERATIONS)[number]): Promise<{ result: string; status: number }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: o.kind === 'subscription' ? 'text/event-stream' : 'application/graphql-response+json',
  };
  if (auth[who]) headers.authorization = auth[who]!;
  const abort = new AbortController();
  const res = await rawFetch(`${cluster.url}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: o.query, variables: o.variables }),
    signal: abort.signal,
  });
  let text: string;
  if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
    // An allowed subscription stays open: read until it ends or 1.5 s have passed with no error.
    text = '';
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const timer = setTimeout(() => abort.abort(), 1500);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        if (text.includes('"errors"')) break;
      }
    } catch {
      // aborted: it stayed open
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  } else text = await res.text();
  const code = /"code":"(UNAUTHENTICATED|FORBIDDEN)"/.exec(text)?.[1];
  return { result: code ?? 'allowed', status: res.status };
}

describe('every operation of the schema has a rule', () => {
  it.each(OPERATIONS.map((o) => [o.op, o] as const))("%s is in rules.ts and in this test's policy", (op, o) => {
    expect(ruleFor(o.type, op.split('.')[1]), `no rule for ${op} in src/auth/rules.ts`).toBeDefined();
    expect(POLICY[op], `no expectation for ${op} in this test`).toBeDefined();
    expect(ruleFor(o.type, op.split('.')[1])).toBe(POLICY[op]);
  });
});

describe.each(WHO)('as %s', (who) => {
  it.each(OPERATIONS.map((o) => [o.op, o] as const))('%s', async (op, o) => {
    const { result, status } = await outcome(who, o);
    expect(result).toBe(expected(who, op));
    if (result === 'UNAUTHENTICATED') expect(status).toBe(401);
    if (result === 'FORBIDDEN' && o.kind !== 'subscription') expect(status).toBe(403);
  });

  it('GET /images/{name}', async () => {
    const res = await rawFetch(`${cluster.url}/images/matrix.bin`, { headers: auth[who] ? { authorization: auth[who]! } : {} });
    const want = expected(who, 'GET /images/{name}');
    if (want === 'allowed') {
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('the role matrix');
    } else {
      expect(res.status).toBe(want === 'UNAUTHENTICATED' ? 401 : 403);
      expect((await res.json()).code).toBe(want);
    }
  });

  it('DELETE /images/{name}', async () => {
    const name = `matrix-delete/${who}.bin`;
    await uploadImage(cluster, name, Buffer.from('to delete'));
    const res = await rawFetch(`${cluster.url}/images/${name}`, {
      method: 'DELETE',
      headers: auth[who] ? { authorization: auth[who]! } : {},
    });
    const want = expected(who, 'DELETE /images/{name}');
    const still = (await cluster.gql('query($n: String!) { image(name: $n) { name } }', { n: name })).image;
    if (want === 'allowed') {
      expect(res.status).toBe(204);
      expect(still).toBeNull();
    } else {
      expect(res.status).toBe(want === 'UNAUTHENTICATED' ? 401 : 403);
      expect((await res.json()).code).toBe(want);
      expect(still).toEqual({ name }); // a refused delete changes nothing
    }
  });
});

describe('graphql-ws', () => {
  const HEALTH = 'subscription { datanodeHealth { status } }';

  it('a read token subscribes with connectionParams', async () => {
    const sub = await subscribeWs(cluster.url, HEALTH, {}, { authorization: auth.read });
    try {
      await sub.waitFor((s: { status: string }) => typeof s.status === 'string', 'a health sample');
    } finally {
      await sub.close();
    }
  });

  /** The close code and reason of a raw graphql-transport-ws connection_init with this payload. */
  const closeOf = (payload: Record<string, unknown>) =>
    new Promise<{ code: number; reason: string }>((resolve, reject) => {
      const ws = new WebSocket(`${cluster.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload })));
      ws.once('message', (m) => reject(new Error(`answered ${m}`)));
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) }));
      ws.once('error', reject);
    });

  // Without a token in connection_init the connection waits for its first operation to bring one
  // in extensions.headers (GraphiQL's way); an operation without one is answered UNAUTHENTICATED.
  it('without a token anywhere an operation is refused UNAUTHENTICATED, and the connection closed with 4401', async () => {
    const answers: string[] = [];
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      const ws = new WebSocket(`${cluster.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
      ws.on('message', (m) => {
        answers.push(String(m));
        if (answers.length === 1) ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: HEALTH } }));
      });
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) }));
      ws.once('error', reject);
    });
    expect(answers[0]).toBe('{"type":"connection_ack"}');
    expect(JSON.parse(answers[1])).toMatchObject({ id: '1', type: 'error', payload: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    expect(answers).toHaveLength(2); // no data
    expect(closed).toMatchObject({ code: 4401, reason: expect.stringContaining('UNAUTHENTICATED') });
  }, 30_000);

  it("a token in an operation's extensions.headers authenticates the connection (GraphiQL)", async () => {
    const answers: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${cluster.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
      ws.on('message', (m) => {
        answers.push(String(m));
        if (answers.length === 1)
          ws.send(
            JSON.stringify({
              id: '1',
              type: 'subscribe',
              payload: { query: HEALTH, extensions: { headers: { Authorization: auth.read } } },
            }),
          );
        if (answers.length === 2) {
          // A second operation with another token is refused on this connection.
          ws.send(
            JSON.stringify({
              id: '2',
              type: 'subscribe',
              payload: { query: HEALTH, extensions: { headers: { authorization: auth.admin } } },
            }),
          );
        }
        if (answers.some((a) => a.includes('"id":"2"'))) {
          ws.close();
          resolve();
        }
      });
      ws.once('error', reject);
    });
    expect(JSON.parse(answers[1])).toMatchObject({
      id: '1',
      type: 'next',
      payload: { data: { datanodeHealth: { status: expect.any(String) } } },
    });
    expect(JSON.parse(answers.find((a) => a.includes('"id":"2"'))!)).toMatchObject({
      type: 'error',
      payload: [{ extensions: { code: 'UNAUTHENTICATED' } }],
    });
  });

  it('with an unknown token the connection is refused with 4401', async () => {
    expect(await closeOf({ authorization: 'Bearer tsr_not-a-token' })).toMatchObject({ code: 4401 });
  });

  it('the cluster secret may not subscribe (FORBIDDEN)', async () => {
    const sub = await subscribeWs(cluster.url, HEALTH, {}, { authorization: auth.cluster });
    try {
      await expect(sub.until(() => false, 'an error', 10_000)).rejects.toThrow(/may not use Subscription.datanodeHealth/);
    } finally {
      await sub.close();
    }
  });
});
