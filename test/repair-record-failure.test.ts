// Re-replication and in-place repair whose recording of a written copy fails (the index cut off,
// fenced): its write intent is released at once, as the replica writer's callers release theirs
// (upload-context's recordWrittenFragment), not kept until the coordinator's restart. Over a real
// index (SQLite and PostgreSQL): an unrecorded copy becomes a deletion, a copy the index records
// (an in-place rewrite, or a recording that committed although its answer was lost) does not.
// The datanodes, registry and repair queue are stubs: what is tested is the step with the index.
import { expect, it } from 'vitest';
import { createInPlaceRepair } from '../src/cluster/repair-in-place.ts';
import { describeOnEngines, type Store } from './support/metadata-engines.ts';
import { uploadRow } from './support/upload-rows.ts';
import { fakeRegistry, node, reReplicateOnce, stepDeps } from './support/repair-steps.ts';

const T = 1_700_000_000_000;
const data = Buffer.from('fragment bytes');
await describeOnEngines('a repair whose recording fails releases its write intent', (store) => {
  /** A stored image of one fragment, recorded on a and b. */
  async function storedFragment(name: string) {
    const u = await store().catalog.insertUpload(uploadRow(name, `up-${name}`, T, data.length, data.length));
    const f = { id: `f-${name}`, imageId: u.id, imageKey: u.imageKey, idx: 0, size: data.length, sha256: 'ab'.repeat(32) };
    expect(await store().catalog.recordOnlyFragmentAndComplete(f, ['a', 'b'], f.sha256, T)).toBe('done');
    return (await store().catalog.fragmentById(f.id))!;
  }

  /** The index with its moveReplicas refused, after committing when `commits` (the answer lost). */
  const refusingMoves = (commits: boolean) =>
    new Proxy(store().catalog, {
      get: (target, key) =>
        key !== 'moveReplicas'
          ? Reflect.get(target, key)
          : async (...args: Parameters<Store['catalog']['moveReplicas']>) => {
              if (commits) await target.moveReplicas(...args);
              throw Object.assign(new Error('the index refused the write (test)'), { code: 'METADATA_UNAVAILABLE' });
            },
    });

  /** Re-replicates the fragment (b DOWN) onto c, through an index that refuses the recording. */
  async function reReplicateOntoC(fragment: Awaited<ReturnType<typeof storedFragment>>, commits: boolean) {
    const catalog = refusingMoves(commits);
    // As the replica writer: an intent on each target before its copy is written.
    const replicas = { read: async () => data, write: async (id: string) => (await catalog.addWriteIntents(id, ['c']), ['c']) };
    await reReplicateOnce(catalog, replicas, fragment, () => T);
  }

  it('re-replication: the copy it wrote and could not record becomes an unrecorded write to delete', async () => {
    const fragment = await storedFragment('copied');
    await reReplicateOntoC(fragment, false);
    expect((await store().catalog.dueDeletions(T)).map((d) => `${d.fragmentId}@${d.datanodeId}:${d.reason}`)).toEqual([
      `${fragment.id}@c:unrecorded-write`,
    ]);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual(['c']);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
  });

  it('re-replication: a recording that committed although it failed leaves its copy recorded, not queued', async () => {
    const fragment = await storedFragment('committed');
    await reReplicateOntoC(fragment, true);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b', 'c']);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual([]);
  });

  it('in-place repair: the rewritten copy, still recorded, loses its intent and is not deleted', async () => {
    const fragment = await storedFragment('rewritten');
    const repair = createInPlaceRepair({
      ...stepDeps(() => T),
      catalog: refusingMoves(false) as never,
      registry: fakeRegistry([node('a'), node('b')]) as never,
      replicas: { read: async () => data } as never,
      client: { putFragment: async () => undefined } as never,
    });
    expect(repair.report({ fragmentId: fragment.id, datanodeId: 'b', reason: 'corrupt' })).toBe(true);
    await repair.pass({ stopped: false });
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual([]);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
  });
});
