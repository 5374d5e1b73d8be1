// Deleting while a datanode is DOWN: deleteImage answers true at once (the index is the truth),
// the live datanodes drop their files right away, and the DOWN one drops its share when it is
// back; images that were kept never lose a copy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { datanodeIds, settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import { auditDisks, fragmentsOf, holdersByContent, piecesOf, restartDatanode, stopDatanode, waitForStatus } from './support/faults.ts';
import { bytesOf, DELETE, download, listNames, uploadImage } from './support/images.ts';

const FRAGMENT = 16 * 1024;
let cluster: TestCluster;

beforeAll(async () => {
  // repair-after stays long: the datanode's outage is short, nothing is re-replicated.
  cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, healthIntervalMs: 100, repairAfterSec: 3600 } });
});
afterAll(() => cluster?.close());

/** Datanodes holding a file of each fragment of `bytes` (by content). */
const copiesOf = (bytes: Buffer) => holdersByContent(cluster, piecesOf(bytes, FRAGMENT));

describe('deleteImage while a datanode is DOWN', () => {
  it('answers true at once; once the datanode is back no file of the image is anywhere, and kept images still have 2 copies', async () => {
    const doomed = bytesOf(6 * FRAGMENT + 3, 1);
    const kept = bytesOf(5 * FRAGMENT + 9, 2);
    await uploadImage(cluster, 'doomed.png', doomed);
    await uploadImage(cluster, 'kept.png', kept);
    // The datanode to stop holds replicas of both images.
    const [doomedFragments, keptFragments] = [await fragmentsOf(cluster, 'doomed.png'), await fragmentsOf(cluster, 'kept.png')];
    const down = [0, 1, 2].find(
      (n) => doomedFragments.some((f) => f.holders.includes(n)) && keptFragments.some((f) => f.holders.includes(n)),
    )!;
    const onDown = (await copiesOf(doomed)).filter((nodes) => nodes.includes(down)).length;
    expect(onDown).toBeGreaterThan(0);

    await stopDatanode(cluster, down);
    await waitForStatus(cluster, down, 'DOWN');

    expect(await cluster.gql(DELETE, { n: 'doomed.png' })).toEqual({ deleteImage: true });
    // Answered without waiting for the DOWN datanode: its deletions are still queued.
    expect(await cluster.app.catalog.pendingDeletionCount()).toBeGreaterThanOrEqual(onDown);
    expect(await listNames(cluster)).toEqual(['kept.png']);
    expect((await download(cluster, 'doomed.png')).res.status).toBe(404);

    // The live datanodes drop their copies now; the DOWN one's wait for it.
    await until(async () => (await copiesOf(doomed)).every((nodes) => nodes.every((n) => n === down)), 'live copies deleted', 10_000);
    expect((await copiesOf(doomed)).filter((nodes) => nodes.length > 0).length).toBe(onDown);
    // The index acknowledges a round's deletions once the datanodes answered, just after the files went.
    await until(async () => (await cluster.app.catalog.pendingDeletionCount()) <= onDown, 'live deletions acknowledged', 10_000);
    expect(await cluster.app.catalog.pendingDeletionCount()).toBe(onDown);
    // Due again now, and a deletion pass tries them while the datanode is DOWN: retried, never given up.
    await cluster.app.catalog.resumeDeletionsOn(datanodeIds(cluster)[down], Date.now());
    await cluster.app.deleter.kick();
    expect(await cluster.app.catalog.pendingDeletionCount()).toBe(onDown);

    await restartDatanode(cluster, down);
    await waitForStatus(cluster, down, 'UP');
    await settleDeletions(cluster, 10_000);
    expect((await copiesOf(doomed)).flat()).toEqual([]);
    for (const nodes of await copiesOf(kept)) expect(nodes).toHaveLength(2);
    expect((await download(cluster, 'kept.png')).body.equals(kept)).toBe(true);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
  });

  it('survives a coordinator restart while the deletions wait for the DOWN datanode', async () => {
    const doomed = bytesOf(4 * FRAGMENT, 3);
    await uploadImage(cluster, 'doomed-2.png', doomed);
    const down = (await fragmentsOf(cluster, 'doomed-2.png'))[0].holders[0];
    await stopDatanode(cluster, down);
    await waitForStatus(cluster, down, 'DOWN');
    expect(await cluster.gql(DELETE, { n: 'doomed-2.png' })).toEqual({ deleteImage: true });

    await cluster.restartCoordinator();
    expect(await cluster.app.catalog.pendingDeletionCount()).toBeGreaterThan(0);
    await restartDatanode(cluster, down);
    await waitForStatus(cluster, down, 'UP');
    await settleDeletions(cluster, 10_000);
    expect((await copiesOf(doomed)).flat()).toEqual([]);
    for (const nodes of await copiesOf(bytesOf(5 * FRAGMENT + 9, 2))) expect(nodes).toHaveLength(2);
  });
});
