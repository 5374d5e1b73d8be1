// Idle uploads expire after --upload-ttl, swept by the coordinator's own timer (no client call
// needed): an UploadExpired event, upload(id) null, UPLOAD_NOT_FOUND for further fragments,
// the fragment files leave the datanodes, and the name is free again.
// (test/upload-idle-expiry.test.ts pins the TTL arithmetic and keep-alive by fragments.)
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { settleDeletions } from './support/disk.ts';
import { testClock, type TestClock } from './support/clock.ts';
import { auditDisks, holdersByContent, piecesOf, watchEvents } from './support/faults.ts';
import { beginUpload, bytesOf, COMPLETE, completeUpload, download, sendFragment, sendFragmentRaw, UPLOAD } from './support/images.ts';

const FRAGMENT = 16 * 1024;
const TTL_SEC = 2;
let cluster: TestCluster;
// The coordinator's clock is held while an upload must stay open: a loaded machine once took
// over 4 s between beginUpload and the first fragment, and the upload expired under the test.
let clock: TestClock;

beforeAll(async () => {
  clock = testClock();
  cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, uploadTtlSec: TTL_SEC } });
});
afterEach(() => clock.release());
afterAll(async () => {
  await cluster?.close();
  clock?.restore();
});

describe('upload expiry', () => {
  it('expires an idle upload: UploadExpired event, files removed, upload(id) null, UPLOAD_NOT_FOUND, name free again', async () => {
    const events = watchEvents(cluster.app);
    const bytes = bytesOf(3 * FRAGMENT, 1);
    const pieces = piecesOf(bytes, FRAGMENT);
    clock.hold();
    const session = await beginUpload(cluster, { name: 'idle.png', size: bytes.length });
    await sendFragment(cluster, session.id, 0, pieces[0]);
    await sendFragment(cluster, session.id, 2, pieces[2]);
    expect((await holdersByContent(cluster, pieces)).map((n) => n.length)).toEqual([2, 0, 2]);
    clock.release(); // idle from here, with the wall clock

    // Nobody touches the cluster meanwhile: the sweeper (every min(ttl, 60) s) finds it.
    const expired = await events.waitFor(
      (e) => e.kind === 'UploadExpired' && e.uploadId === session.id,
      'UploadExpired',
      (2 * TTL_SEC + 10) * 1000, // a TTL, the next sweep, and room for a loaded machine
    );
    expect(expired).toMatchObject({ name: 'idle.png' });
    await settleDeletions(cluster);
    expect((await holdersByContent(cluster, pieces)).flat()).toEqual([]);
    events.close();

    expect((await cluster.gql(UPLOAD, { u: session.id })).upload).toBeNull();
    expect(codeOf(await sendFragmentRaw(cluster, session.id, 1, pieces[1]))).toBe('UPLOAD_NOT_FOUND');
    expect(codeOf(await cluster.gql.request(COMPLETE, { u: session.id }))).toBe('UPLOAD_NOT_FOUND');

    // The name is free: a new upload of it completes.
    clock.hold();
    const again = await beginUpload(cluster, { name: 'idle.png', size: bytes.length });
    for (let i = 0; i < 3; i++) await sendFragment(cluster, again.id, i, pieces[i]);
    await completeUpload(cluster, again.id);
    expect((await download(cluster, 'idle.png')).body.equals(bytes)).toBe(true);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
  });
});
