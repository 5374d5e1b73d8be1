// completeUpload(sha256:) lets a client that hashed while sending have the whole image checked
// before it becomes visible; UploadSession shows what beginUpload announced, for a resume.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 2 });
});
afterAll(() => cluster?.close());

it('verifies a sha256 given at completion and stays open on a mismatch', async () => {
  const bytes = randomBytes(150_000);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const { beginUpload: up } = await cluster.gql(
    `mutation { beginUpload(input: { name: "late-hash.bin", size: ${bytes.length}, contentType: "image/webp" }) { id fragmentSize fragmentCount contentType sha256 } }`,
  );
  expect(up.contentType).toBe('image/webp');
  expect(up.sha256).toBeNull();
  for (let i = 0; i < up.fragmentCount; i++) {
    const data = bytes.subarray(i * up.fragmentSize, (i + 1) * up.fragmentSize).toString('base64');
    await cluster.gql(`mutation($u: ID!, $i: Int!, $d: Base64) { uploadFragment(uploadId: $u, index: $i, data: $d) { index } }`, {
      u: up.id,
      i,
      d: data,
    });
  }
  const complete = `mutation($u: ID!, $s: String) { completeUpload(uploadId: $u, sha256: $s) { sha256 } }`;
  const wrong = await cluster.gql.request(complete, { u: up.id, s: '0'.repeat(64) });
  expect(codeOf(wrong)).toBe('CHECKSUM_MISMATCH');
  expect((await cluster.gql(`{ image(name: "late-hash.bin") { name } }`)).image).toBeNull();
  expect(
    (await cluster.gql(`query($u: ID!) { upload(id: $u) { receivedFragments } }`, { u: up.id })).upload.receivedFragments,
  ).toHaveLength(up.fragmentCount);

  const ok = await cluster.gql(complete, { u: up.id, s: sha256 });
  expect(ok.completeUpload.sha256).toBe(sha256);
});

it('shows the announced whole-image sha256 on the upload session', async () => {
  const sha256 = 'a'.repeat(64);
  const { beginUpload } = await cluster.gql(
    `mutation { beginUpload(input: { name: "announced.bin", size: 10, sha256: "${sha256}" }) { id sha256 contentType } }`,
  );
  expect(beginUpload).toMatchObject({ sha256, contentType: 'application/octet-stream' });
  expect((await cluster.gql(`query($u: ID!) { upload(id: $u) { sha256 } }`, { u: beginUpload.id })).upload.sha256).toBe(sha256);
});
