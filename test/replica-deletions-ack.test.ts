// The replica deleter over a real index (SQLite and PostgreSQL) acknowledges each deletion only as
// it was queued: a deletion that replaced the row while its round was out (the image deleted) is
// sent in turn, and a file sent again as a surplus replica is acknowledged with its queued reason;
// a file the index came to record while it was out is not sent again as a surplus replica.
// The datanodes are stubs (stub-deleter.ts): what is tested is the deleter with the index.
import { expect, it } from 'vitest';
import { describeOnEngines } from './support/metadata-engines.ts';
import { uploadRow } from './support/upload-rows.ts';
import { stubDeleter } from './support/stub-deleter.ts';

const T = 1_700_000_000_000;
const HASH = 'ab'.repeat(32);

await describeOnEngines('replica deleter acknowledgements', (store) => {
  /** A stored image of one fragment recorded on a and b; its fragment also written to c, unrecorded (an unrecorded-write deletion queued). */
  async function imageWithStrayCopy(name: string) {
    const u = await store().catalog.insertUpload(uploadRow(name, `up-${name}`, T, 4, 4));
    const f = `f-${name}`;
    await store().catalog.addWriteIntents(f, ['a', 'b', 'c']);
    const recorded = { id: f, imageId: u.id, imageKey: u.imageKey, idx: 0, size: 4, sha256: f.padEnd(64, '0') };
    expect(await store().catalog.recordOnlyFragmentAndComplete(recorded, ['a', 'b'], HASH, T)).toBe('done');
    await store().catalog.releaseWriteIntents(f, ['c'], T);
    expect(await store().catalog.dueDeletions(Date.now())).toMatchObject([{ fragmentId: f, datanodeId: 'c', reason: 'unrecorded-write' }]);
    return { image: (await store().catalog.imageById(u.id))!, f };
  }

  it("an image's deletion that replaced an unrecorded write's row while it was sent is sent in turn, not acknowledged with it", async () => {
    const { image, f } = await imageWithStrayCopy('raced');
    let raced = false;
    const { deleter, batches } = stubDeleter(store().catalog, {
      // While c deletes the stray copy: it is recorded after all (a raced recording), then the
      // image is deleted, which queues c's file again, now as the image's.
      answer: async (sent): Promise<'deleted'> => {
        if (!raced && sent.datanode === 'c') {
          raced = true;
          expect(await store().catalog.moveReplicas(f, ['c'], [], T)).toBe(true);
          expect(await store().catalog.deleteImage(image.id, T)).toBe(true);
        }
        return 'deleted';
      },
    });
    deleter.start();
    await deleter.idle();
    await deleter.stop();
    const sent = batches.map((d) => `${d.datanode}:${d.reason}`);
    expect(sent[0]).toBe('c:unrecorded-write');
    expect(sent.slice(1).sort()).toEqual(['a', 'b', 'c'].map((d) => `${d}:image-deleted`));
    expect(await store().catalog.pendingDeletionCount()).toBe(0);
  });

  it('a file refused as in use and sent again as a surplus replica is acknowledged as it was queued', async () => {
    await imageWithStrayCopy('surplus');
    // c received the write with its image's manifest: it refuses an unrecorded write's deletion
    // of a live image's fragment, and deletes it as the surplus copy it is (a, b hold R = 2).
    const { deleter, batches } = stubDeleter(store().catalog, {
      answer: (sent) => {
        // A third send means the row outlived its acknowledgement: failed, it is retried after a
        // backoff, so the pass ends (else the deleter would send it again and again).
        if (batches.length > 2) throw new Error('sent again');
        return sent.reason === 'surplus-replica' ? 'deleted' : 'in-use';
      },
    });
    deleter.start();
    await deleter.idle();
    await deleter.stop();
    expect(batches.map((d) => `${d.datanode}:${d.reason}`)).toEqual(['c:unrecorded-write', 'c:surplus-replica']);
    expect(await store().catalog.pendingDeletionCount()).toBe(0);
  });

  it('a file refused as in use because its recording committed meanwhile is kept, not sent again as a surplus replica', async () => {
    const { f } = await imageWithStrayCopy('recorded-meanwhile');
    // The unrecorded write's row passed the round's settle check; then c's copy is recorded (a
    // raced recording), and c refuses as in use. a and b hold R = 2 besides, but c's copy is one
    // the index records: deleted as a surplus, it would be a replica with no file.
    const { deleter, batches } = stubDeleter(store().catalog, {
      answer: async (sent) => {
        if (sent.reason !== 'unrecorded-write') return 'deleted';
        expect(await store().catalog.moveReplicas(f, ['c'], [], T)).toBe(true);
        return 'in-use';
      },
    });
    deleter.start();
    await deleter.idle();
    await deleter.stop();
    expect(batches.map((d) => `${d.datanode}:${d.reason}`)).toEqual(['c:unrecorded-write']);
    expect((await store().catalog.replicasOf(f)).sort()).toEqual(['a', 'b', 'c']);
    expect(await store().catalog.pendingDeletionCount()).toBe(0);
  });
});
