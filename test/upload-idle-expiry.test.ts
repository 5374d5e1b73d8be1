// Upload expiry (--upload-ttl): an upload idle past its TTL answers UPLOAD_NOT_FOUND, frees its
// name and loses its fragment files; every stored fragment keeps an upload alive.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { fragmentFilesBySha256 } from './support/disk.ts';
import { until } from './support/poll.ts';
import { testClock, type TestClock } from './support/clock.ts';
import {
  ABORT,
  beginUpload,
  bytesOf,
  COMPLETE,
  completeUpload,
  listNames,
  sendFragment,
  sendFragmentRaw,
  sha256,
  sliceOf,
  UPLOAD,
} from './support/images.ts';

const FRAGMENT = 4096;
const TTL_MS = 2000;
let cluster: TestCluster;
// The coordinator's clock is held while an upload must stay open: a loaded machine once took
// over 4 s between beginUpload and the first fragment, and the upload expired under the test.
let clock: TestClock;
beforeAll(async () => {
  clock = testClock();
  cluster = await startCluster({ config: { fragmentSize: FRAGMENT, uploadTtlSec: TTL_MS / 1000 } });
});
afterEach(() => clock.release());
afterAll(async () => {
  await cluster?.close();
  clock?.restore();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('expires an idle upload: UPLOAD_NOT_FOUND, name free, fragment files removed', async () => {
  const bytes = bytesOf(3 * FRAGMENT, 1);
  clock.hold();
  const session = await beginUpload(cluster, { name: 'idle.png', size: bytes.length });
  expect(Date.parse(session.expiresAt) - Date.now()).toBeLessThanOrEqual(TTL_MS);
  for (const i of [0, 2]) await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
  expect((await fragmentFilesBySha256(cluster)).get(sha256(sliceOf(bytes, FRAGMENT, 0)))).toHaveLength(2);
  clock.release(); // idle from here, with the wall clock

  await sleep(TTL_MS + 200);
  expect((await cluster.gql(UPLOAD, { u: session.id })).upload).toBeNull();
  expect(codeOf(await sendFragmentRaw(cluster, session.id, 1, sliceOf(bytes, FRAGMENT, 1)))).toBe('UPLOAD_NOT_FOUND');
  expect(codeOf(await cluster.gql.request(COMPLETE, { u: session.id }))).toBe('UPLOAD_NOT_FOUND');
  expect(codeOf(await cluster.gql.request(ABORT, { u: session.id }))).toBe('UPLOAD_NOT_FOUND');

  // The sweeper (every min(ttl, 60) s) removes its fragments from the datanodes.
  await until(
    async () => {
      const onDisk = await fragmentFilesBySha256(cluster);
      return [0, 2].every((i) => !onDisk.has(sha256(sliceOf(bytes, FRAGMENT, i))));
    },
    "the expired upload's fragment files to go",
    2 * TTL_MS + 10_000, // the next sweep, then the deletions, on a loaded machine
  );

  // The name is free again.
  clock.hold();
  const again = await beginUpload(cluster, { name: 'idle.png', size: 10 });
  await sendFragment(cluster, again.id, 0, bytesOf(10, 2));
  expect((await completeUpload(cluster, again.id)).name).toBe('idle.png');
  expect(await listNames(cluster)).toEqual(['idle.png']);
});

it('keeps an upload alive while fragments keep arriving', async () => {
  const bytes = bytesOf(4 * FRAGMENT, 3);
  // The clock moves only as the test moves it: each gap is 0.6 TTL, however slow the round trips.
  clock.hold();
  const session = await beginUpload(cluster, { name: 'busy.png', size: bytes.length });
  for (const i of [3, 1, 0, 2]) {
    clock.advance(TTL_MS * 0.6);
    await sendFragment(cluster, session.id, i, sliceOf(bytes, FRAGMENT, i));
  }
  // 2.4 TTL after it began, longer than the TTL, but never idle that long: each fragment gave it
  // a whole TTL again.
  const open = (await cluster.gql(UPLOAD, { u: session.id })).upload;
  expect(open.receivedFragments).toEqual([0, 1, 2, 3]);
  expect(Date.parse(open.expiresAt)).toBeGreaterThan(Date.now());
  expect(Date.parse(open.expiresAt)).toBe(Date.now() + TTL_MS);
  expect((await completeUpload(cluster, session.id)).sha256).toBe(sha256(bytes));
});
