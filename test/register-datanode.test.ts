// registerDatanode needs the cluster secret (UNAUTHENTICATED otherwise, nothing registered) and
// is idempotent by URL; a registered datanode is listed and takes replicas.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { join } from 'node:path';
import { startCluster, startDatanode, TEST_SECRET, type TestCluster, type TestDatanode } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { until } from './support/poll.ts';

const REGISTER = `mutation($url: String!) { registerDatanode(url: $url) { id url status } }`;
const DATANODES = `{ datanodes { id url status } cluster { datanodeCount liveDatanodeCount } }`;

let cluster: TestCluster;
let extra: TestDatanode;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
  extra = await startDatanode(join(cluster.dir, 'datanode-extra'), undefined, 2);
});
afterAll(async () => {
  await extra?.close();
  await cluster?.close();
});

it.each([
  ['no Authorization header', { authorization: '' }], // '' : the helper sends no token at all
  ['a wrong secret', { authorization: 'Bearer not-the-secret' }],
  ['the secret without the Bearer scheme', { authorization: TEST_SECRET }],
  ['another scheme', { authorization: `Basic ${Buffer.from(`x:${TEST_SECRET}`).toString('base64')}` }],
  ['an empty bearer token', { authorization: 'Bearer ' }],
])('answers UNAUTHENTICATED with %s and registers nothing', async (_what, headers: Record<string, string>) => {
  const before = await cluster.gql(DATANODES);
  const res = await cluster.gql.request(REGISTER, { url: extra.url }, headers);
  expect(codeOf(res)).toBe('UNAUTHENTICATED');
  // Refused before the request is parsed (HTTP 401): a request error, so no data at all.
  expect(res.status).toBe(401);
  expect(res.data ?? null).toBeNull();
  expect(await cluster.gql(DATANODES)).toEqual(before);
  expect(before.datanodes.map((n: { url: string }) => n.url)).not.toContain(extra.url);
});

it('registers with the secret, idempotently by URL', async () => {
  const auth = { authorization: `Bearer ${TEST_SECRET}` };
  const first = await cluster.gql(REGISTER, { url: extra.url }, auth);
  expect(first.registerDatanode).toMatchObject({ url: extra.url, status: 'UP' });
  const again = await cluster.gql(REGISTER, { url: extra.url }, auth);
  expect(again.registerDatanode.id).toBe(first.registerDatanode.id);
  const withSlash = await cluster.gql(REGISTER, { url: `${extra.url}/` }, auth);
  expect(withSlash.registerDatanode.id).toBe(first.registerDatanode.id);

  const { datanodes, cluster: figures } = await cluster.gql(DATANODES);
  expect(datanodes).toHaveLength(3);
  expect(datanodes.filter((n: { url: string }) => n.url === extra.url)).toHaveLength(1);
  expect(figures).toEqual({ datanodeCount: 3, liveDatanodeCount: 3 });

  // A datanode already known from the start is the same datanode too.
  const known = datanodes.find((n: { url: string }) => n.url === cluster.nodes[0].url);
  expect((await cluster.gql(REGISTER, { url: cluster.nodes[0].url }, auth)).registerDatanode.id).toBe(known.id);
});

it('places replicas on the newly registered datanode', async () => {
  const { datanodes } = await cluster.gql(DATANODES);
  const newId = datanodes.find((n: { url: string }) => n.url === extra.url).id;
  const seen = new Set<string>();
  const session = (await cluster.gql(`mutation { beginUpload(input: { name: "spread", size: 40960 }) { id fragmentCount } }`)).beginUpload;
  // 64 KiB fragments: one fragment; send it again and again until the new node takes a replica.
  await until(async () => {
    const data = Buffer.alloc(40960, seen.size + 1).toString('base64');
    const { uploadFragment } = await cluster.gql(
      `mutation($u: ID!, $d: Base64) { uploadFragment(uploadId: $u, index: 0, data: $d) { replicas { id } } }`,
      { u: session.id, d: data },
    );
    for (const r of uploadFragment.replicas) seen.add(r.id);
    return seen.has(newId);
  }, 'a replica on the new datanode');
});

it('rejects a URL that is not http(s), with the secret', async () => {
  const res = await cluster.gql.request(REGISTER, { url: 'ftp://example.com' }, { authorization: `Bearer ${TEST_SECRET}` });
  expect(codeOf(res)).toBe('BAD_USER_INPUT');
  expect((await cluster.gql(DATANODES)).datanodes).toHaveLength(3);
});
