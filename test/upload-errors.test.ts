// Every error code of the contract that a client's upload and fragment calls can meet, and that
// the failed call changed nothing: same listing, figures, open uploads and fragment files on disk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf, type GraphQLResponse } from './support/graphql.ts';
import {
  ABORT,
  BEGIN,
  beginUpload,
  bytesOf,
  COMPLETE,
  completeUpload,
  FRAGMENT_DATA,
  IMAGE,
  listNames,
  SEND,
  sendFragment,
  sendFragmentRaw,
  sha256,
  sliceOf,
  stateOf,
  UPLOAD,
  uploadChunked,
  uploadImageRaw,
} from './support/images.ts';

const FRAGMENT = 4096;
const MAX_IMAGE = 64 * 1024;
const MAX_ONE_SHOT = 32 * 1024;
const BOTH = `mutation($u: ID!, $i: Int!, $d: Base64, $f: File) { uploadFragment(uploadId: $u, index: $i, data: $d, file: $f) { index } }`;

let cluster: TestCluster;
/** A stored image and an open upload (fragments 0 and 2 of 4 received) that every test may hit. */
const stored = { name: 'stored.png', bytes: bytesOf(3 * FRAGMENT - 100, 1) };
const open = { name: 'open.png', bytes: bytesOf(3 * FRAGMENT + 10, 2), id: '' };

beforeAll(async () => {
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT, maxImageSize: MAX_IMAGE, maxUploadImageSize: MAX_ONE_SHOT } });
  await uploadChunked(cluster, stored.name, stored.bytes, { contentType: 'image/png' });
  open.id = (await beginUpload(cluster, { name: open.name, size: open.bytes.length })).id;
  for (const i of [2, 0]) await sendFragment(cluster, open.id, i, sliceOf(open.bytes, FRAGMENT, i));
});
afterAll(() => cluster?.close());

/** Runs `call`, expects `code` with no data, and that listing, figures, uploads and disk are unchanged. */
async function expectRejected(
  code: string,
  call: () => Promise<GraphQLResponse>,
  uploadIds: string[] = [open.id],
): Promise<GraphQLResponse> {
  const before = await stateOf(cluster, uploadIds);
  const res = await call();
  expect(res.errors, JSON.stringify(res)).toBeDefined();
  expect(codeOf(res), res.errors?.[0]?.message).toBe(code);
  expect(res.data == null || Object.values(res.data).every((v) => v == null)).toBe(true);
  expect(await stateOf(cluster, uploadIds)).toEqual(before);
  return res;
}

const begin = (input: Record<string, unknown>) => () => cluster.gql.request(BEGIN, { i: { size: 10, ...input } });

describe('BAD_USER_INPUT', () => {
  const badNames: [string, string][] = [
    ['empty', ''],
    ['dot', '.'],
    ['dot dot', '..'],
    ['256 characters', 'a'.repeat(256)],
    ['256 characters of emoji', '🌴'.repeat(256)],
    ['NUL', 'a\u0000b'],
    ['newline', 'a\nb'],
    ['tab', 'a\tb'],
    ['DEL', 'a\u007f'],
    ['C1 control', 'a\u0085b'],
    ['lone high surrogate', '\ud800'],
    ['lone low surrogate', 'x\udc00y'],
  ];
  it.each(badNames)('rejects a bad name (%s) at beginUpload', async (_what, name) => {
    await expectRejected('BAD_USER_INPUT', begin({ name }));
  });

  it('sends the lone surrogate as the JSON escape "\\ud800"', async () => {
    await expectRejected('BAD_USER_INPUT', async () => {
      const res = await fetch(`${cluster.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"query":${JSON.stringify(BEGIN)},"variables":{"i":{"name":"bad\\ud800","size":10}}}`,
      });
      return { status: res.status, ...(await res.json()) };
    });
  });

  it('rejects a bad name at uploadImage', async () => {
    for (const name of ['', '..', 'a'.repeat(256), 'a\nb'])
      await expectRejected('BAD_USER_INPUT', () => uploadImageRaw(cluster, name, bytesOf(10)));
  });

  it('accepts the longest name (255 characters, even 4-byte ones) and a name of odd characters', async () => {
    for (const name of ['🌴'.repeat(255), 'a'.repeat(255), '...', ' .', 'a/../b', '%2F']) {
      const session = await beginUpload(cluster, { name, size: 10 });
      expect(session.name).toBe(name);
      expect(await cluster.gql(ABORT, { u: session.id })).toEqual({ abortUpload: true });
    }
  });

  it('rejects size 0 and negative sizes', async () => {
    await expectRejected('BAD_USER_INPUT', begin({ name: 'zero', size: 0 }));
    await expectRejected('BAD_USER_INPUT', begin({ name: 'negative', size: -5 }));
  });

  it('rejects an announced sha256 that is not 64 lowercase hex digits', async () => {
    await expectRejected('BAD_USER_INPUT', begin({ name: 'sha', sha256: 'ABC' }));
    await expectRejected('BAD_USER_INPUT', begin({ name: 'sha', sha256: sha256(Buffer.from('x')).toUpperCase() }));
  });

  it.each(['abc', 'ab=c', 'a===', 'Zm9v\n', 'Zm9v YmFy', '-_-_', 'Zm9=v'])('rejects invalid base64 %j in a variable', async (data) => {
    await expectRejected('BAD_USER_INPUT', () => cluster.gql.request(SEND, { u: open.id, i: 1, d: data }));
  });

  it('rejects invalid base64 written inline in the query', async () => {
    await expectRejected('BAD_USER_INPUT', () =>
      cluster.gql.request(`mutation { uploadFragment(uploadId: "${open.id}", index: 1, data: "ab=c") { index } }`),
    );
  });

  it('rejects neither data nor file', async () => {
    await expectRejected('BAD_USER_INPUT', () => cluster.gql.request(SEND, { u: open.id, i: 1 }));
  });

  it('rejects both data and file', async () => {
    const slice = sliceOf(open.bytes, FRAGMENT, 1);
    await expectRejected('BAD_USER_INPUT', () =>
      cluster.gql.multipart(BOTH, { u: open.id, i: 1, d: slice.toString('base64'), f: null }, { 'variables.f': { data: slice } }),
    );
  });
});

describe('PAYLOAD_TOO_LARGE', () => {
  it('answers a beginUpload size above the maximum image size', async () => {
    await expectRejected('PAYLOAD_TOO_LARGE', begin({ name: 'huge.png', size: MAX_IMAGE + 1 }));
    const atLimit = await beginUpload(cluster, { name: 'at-limit.png', size: MAX_IMAGE });
    expect(atLimit.fragmentCount).toBe(MAX_IMAGE / FRAGMENT);
    await cluster.gql(ABORT, { u: atLimit.id });
  });

  it('answers an uploadImage file above the one-shot limit', async () => {
    await expectRejected('PAYLOAD_TOO_LARGE', () => uploadImageRaw(cluster, 'big-one-shot.png', bytesOf(MAX_ONE_SHOT + 1)));
    expect(await listNames(cluster)).not.toContain('big-one-shot.png');
  });
});

describe('IMAGE_NOT_FOUND', () => {
  it('answers fragmentData of an unknown image and of a name that is only an open upload', async () => {
    await expectRejected('IMAGE_NOT_FOUND', () => cluster.gql.request(FRAGMENT_DATA, { n: 'no-such.png', i: 0 }));
    await expectRejected('IMAGE_NOT_FOUND', () => cluster.gql.request(FRAGMENT_DATA, { n: open.name, i: 0 }));
    expect((await cluster.gql(IMAGE, { n: 'no-such.png' })).image).toBeNull();
    expect((await cluster.gql(IMAGE, { n: open.name })).image).toBeNull();
  });
});

describe('IMAGE_ALREADY_EXISTS', () => {
  it('answers a name held by a stored image or by an open upload', async () => {
    await expectRejected('IMAGE_ALREADY_EXISTS', begin({ name: stored.name }));
    await expectRejected('IMAGE_ALREADY_EXISTS', begin({ name: open.name }));
    await expectRejected('IMAGE_ALREADY_EXISTS', () => uploadImageRaw(cluster, stored.name, bytesOf(100, 9)));
    await expectRejected('IMAGE_ALREADY_EXISTS', () => uploadImageRaw(cluster, open.name, bytesOf(100, 9)));
    // The stored image is untouched.
    const { image } = await cluster.gql(IMAGE, { n: stored.name });
    expect(image.sha256).toBe(sha256(stored.bytes));
  });

  it('lets exactly one of several concurrent beginUpload calls take a name', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, () => cluster.gql.request(BEGIN, { i: { name: 'contested.png', size: 10 } })),
    );
    const won = results.filter((r) => !r.errors);
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.errors).map(codeOf)).toEqual(Array(5).fill('IMAGE_ALREADY_EXISTS'));
    await cluster.gql(ABORT, { u: won[0].data.beginUpload.id });
  });

  it('treats names as exact byte strings: case, spaces and Unicode normalization make other names', async () => {
    const nfc = await beginUpload(cluster, { name: '\u00e9.png', size: 1 });
    for (const name of ['Stored.png', 'stored.png ', 'e\u0301.png']) {
      const s = await beginUpload(cluster, { name, size: 1 });
      expect(s.name).toBe(name);
      await cluster.gql(ABORT, { u: s.id });
    }
    await cluster.gql(ABORT, { u: nfc.id });
  });
});

describe('UPLOAD_NOT_FOUND', () => {
  const calls = (id: string): [string, () => Promise<GraphQLResponse>][] => [
    ['uploadFragment', () => sendFragmentRaw(cluster, id, 0, bytesOf(10))],
    ['uploadFragment (multipart)', () => sendFragmentRaw(cluster, id, 0, bytesOf(10), { multipart: true })],
    ['completeUpload', () => cluster.gql.request(COMPLETE, { u: id })],
    ['abortUpload', () => cluster.gql.request(ABORT, { u: id })],
  ];

  it('answers an unknown upload id', async () => {
    for (const [what, call] of calls('no-such-upload'))
      await expectRejected('UPLOAD_NOT_FOUND', call).catch((e) => Promise.reject(new Error(`${what}: ${e.message}`)));
    expect((await cluster.gql(UPLOAD, { u: 'no-such-upload' })).upload).toBeNull();
  });

  it('answers a completed upload', async () => {
    const bytes = bytesOf(10, 3);
    const s = await beginUpload(cluster, { name: 'completed.png', size: bytes.length });
    await sendFragment(cluster, s.id, 0, bytes);
    await completeUpload(cluster, s.id);
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload).toBeNull();
    for (const [, call] of calls(s.id)) await expectRejected('UPLOAD_NOT_FOUND', call);
    expect((await cluster.gql(IMAGE, { n: 'completed.png' })).image.sha256).toBe(sha256(bytes));
  });

  it('answers an aborted upload', async () => {
    const s = await beginUpload(cluster, { name: 'aborted.png', size: 10 });
    await sendFragment(cluster, s.id, 0, bytesOf(10, 4));
    expect(await cluster.gql(ABORT, { u: s.id })).toEqual({ abortUpload: true });
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload).toBeNull();
    for (const [, call] of calls(s.id)) await expectRejected('UPLOAD_NOT_FOUND', call);
    expect(await listNames(cluster)).not.toContain('aborted.png');
  });
});

describe('INVALID_FRAGMENT', () => {
  it('answers an index outside 0..fragmentCount-1', async () => {
    for (const i of [-1, 4, 1000]) {
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, i, bytesOf(FRAGMENT)));
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, i, bytesOf(FRAGMENT), { multipart: true }));
    }
  });

  it('answers a middle fragment of another size than fragmentSize', async () => {
    for (const size of [FRAGMENT - 1, FRAGMENT + 1, 1]) {
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, 1, bytesOf(size)));
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, 1, bytesOf(size), { multipart: true }));
    }
  });

  it('answers a last fragment of another size than the rest of the image', async () => {
    // 3 * FRAGMENT + 10 bytes: the last fragment (index 3) is 10 bytes.
    for (const size of [9, 11, FRAGMENT]) {
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, 3, bytesOf(size)));
      await expectRejected('INVALID_FRAGMENT', () => sendFragmentRaw(cluster, open.id, 3, bytesOf(size), { multipart: true }));
    }
  });

  it('answers fragmentData of an index outside the image', async () => {
    for (const i of [-1, 3, 99]) await expectRejected('INVALID_FRAGMENT', () => cluster.gql.request(FRAGMENT_DATA, { n: stored.name, i }));
  });
});

describe('CHECKSUM_MISMATCH', () => {
  it('answers a fragment whose given sha256 differs from its bytes', async () => {
    const slice = sliceOf(open.bytes, FRAGMENT, 1);
    const wrong = sha256(bytesOf(FRAGMENT, 77));
    await expectRejected('CHECKSUM_MISMATCH', () => sendFragmentRaw(cluster, open.id, 1, slice, { sha256: wrong }));
    await expectRejected('CHECKSUM_MISMATCH', () => sendFragmentRaw(cluster, open.id, 1, slice, { sha256: wrong, multipart: true }));
  });

  it('answers completeUpload of an image that hashes to another sha256 than announced; the upload stays open and can be fixed', async () => {
    const bytes = bytesOf(3 * FRAGMENT + 1, 5);
    const s = await beginUpload(cluster, { name: 'announced.png', size: bytes.length, sha256: sha256(bytes) });
    const corrupt = bytesOf(FRAGMENT, 6);
    for (const i of [0, 1, 2, 3]) await sendFragment(cluster, s.id, i, i === 1 ? corrupt : sliceOf(bytes, FRAGMENT, i));

    await expectRejected('CHECKSUM_MISMATCH', () => cluster.gql.request(COMPLETE, { u: s.id }), [open.id, s.id]);
    expect((await cluster.gql(UPLOAD, { u: s.id })).upload.receivedFragments).toEqual([0, 1, 2, 3]);
    expect((await cluster.gql(IMAGE, { n: 'announced.png' })).image).toBeNull();

    await sendFragment(cluster, s.id, 1, sliceOf(bytes, FRAGMENT, 1));
    const image = await completeUpload(cluster, s.id);
    expect(image.sha256).toBe(sha256(bytes));
    const res = await fetch(image.url);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('keeps answering it while the announced hash is wrong', async () => {
    const bytes = bytesOf(FRAGMENT + 1, 7);
    const s = await beginUpload(cluster, {
      name: 'wrong-announced.png',
      size: bytes.length,
      sha256: sha256(Buffer.from('something else')),
    });
    for (const i of [1, 0]) await sendFragment(cluster, s.id, i, sliceOf(bytes, FRAGMENT, i));
    for (let attempt = 0; attempt < 2; attempt++)
      await expectRejected('CHECKSUM_MISMATCH', () => cluster.gql.request(COMPLETE, { u: s.id }), [open.id, s.id]);
    await cluster.gql(ABORT, { u: s.id });
  });
});

describe('UPLOAD_INCOMPLETE', () => {
  it('answers completeUpload with missing fragments, naming them', async () => {
    const res = await expectRejected('UPLOAD_INCOMPLETE', () => cluster.gql.request(COMPLETE, { u: open.id }));
    expect(res.errors![0].message).toMatch(/\b1, 3\b/);
    expect((await cluster.gql(UPLOAD, { u: open.id })).upload.receivedFragments).toEqual([0, 2]);
  });

  it('names every fragment of an upload that received none', async () => {
    const s = await beginUpload(cluster, { name: 'empty-upload.png', size: 2 * FRAGMENT + 1 });
    const res = await expectRejected('UPLOAD_INCOMPLETE', () => cluster.gql.request(COMPLETE, { u: s.id }), [open.id, s.id]);
    expect(res.errors![0].message).toMatch(/\b0, 1, 2\b/);
    await cluster.gql(ABORT, { u: s.id });
  });
});

it('still completes the shared open upload after all those failures', async () => {
  for (const i of [3, 1]) await sendFragment(cluster, open.id, i, sliceOf(open.bytes, FRAGMENT, i));
  const image = await completeUpload(cluster, open.id);
  expect(image.sha256).toBe(sha256(open.bytes));
});
