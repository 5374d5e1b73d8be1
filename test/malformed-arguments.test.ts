// Arguments the GraphQL type system rejects (wrong scalar type, in a variable or a literal)
// answer BAD_USER_INPUT like every other malformed argument, and store nothing.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
});
afterAll(() => cluster?.close());

const BEGIN = 'mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id } }';

it.each([
  ['a non-integer size in a variable', BEGIN, { i: { name: 'x', size: 1.5 } }],
  ['a size above 2^53 - 1', BEGIN, { i: { name: 'x', size: 2 ** 53 } }],
  ['a size given as a string', BEGIN, { i: { name: 'x', size: '10' } }],
  ['a missing required input field', BEGIN, { i: { size: 10 } }],
  ['a non-integer size literal', 'mutation { beginUpload(input: { name: "x", size: 1.5 }) { id } }', {}],
  ['a non-integer first literal', '{ images(first: 1.5) { totalCount } }', {}],
  ['a string for an Int variable', 'query($f: Int) { images(first: $f) { totalCount } }', { f: 'a' }],
  ['an invalid base64 literal', 'mutation { uploadFragment(uploadId: "u", index: 0, data: "ab=c") { index } }', {}],
])('%s answers BAD_USER_INPUT', async (_what, query, variables) => {
  const res = await cluster.gql.request(query, variables);
  expect(codeOf(res)).toBe('BAD_USER_INPUT');
  const { images, upload } = await cluster.gql(`{ images { totalCount } upload(id: "x") { id } }`);
  expect(images.totalCount).toBe(0);
  expect(upload).toBeNull();
});
