import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes, createHash } from 'node:crypto';
import { startCluster, type TestCluster } from './support/cluster.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(() => cluster?.close());

it('round trip', async () => {
  const bytes = randomBytes(200_000);
  const begin = await cluster.gql(`mutation($i: BeginUploadInput!){ beginUpload(input:$i){ id fragmentCount fragmentSize } }`, { i: { name: 'a.png', size: bytes.length, contentType: 'image/png' } });
  const { id, fragmentCount, fragmentSize } = begin.beginUpload;
  for (let i = fragmentCount - 1; i >= 0; i--) {
    await cluster.gql(`mutation($u: ID!, $i: Int!, $d: Base64){ uploadFragment(uploadId:$u, index:$i, data:$d){ index replicas { id } } }`, { u: id, i, d: bytes.subarray(i * fragmentSize, (i + 1) * fragmentSize).toString('base64') });
  }
  const done = await cluster.gql(`mutation($u: ID!){ completeUpload(uploadId:$u){ name sha256 url size } }`, { u: id });
  expect(done.completeUpload.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  const res = await fetch(done.completeUpload.url);
  expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  const mp = await cluster.gql.multipart(`mutation($f: File!){ uploadImage(name: "b", file: $f){ name size sha256 } }`, { f: null }, { 'variables.f': { data: bytes } });
  expect(mp.errors).toBeUndefined();
  expect(mp.data.uploadImage.size).toBe(bytes.length);
});
