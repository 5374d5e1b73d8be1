// Re-replication and in-place repair whose recording of a written copy fails (the index cut off,
// fenced): its write intent is released at once, as the replica writer's callers release theirs
// (upload-context's recordWrittenFragment), not kept until the coordinator's restart. Over a real
// index (SQLite and PostgreSQL): an unrecorded copy becomes a deletion, a copy the index records
// (an in-place rewrite) does not. A regression guard besides: re-replication whose recording
// committed although its answer was lost leaves its copy recorded.
// The datanodes, registry and repair queue are stubs: what is tested is the step with the index.
// On PostgreSQL also a step whose lease moved on while it wrote: its recording is refused
// (FENCED), and its release, made unfenced, is not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino, type Logger } from 'pino';
import { createInPlaceRepair } from '../src/cluster/repair-in-place.ts';
import { openPostgresMetadata, type PostgresMetadataStore } from '../src/metadata/postgres/index.ts';
import { withFence } from '../src/shared/fence.ts';
import { describeOnEngines, type Store } from './support/metadata-engines.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';
import { uploadRow } from './support/upload-rows.ts';
import { fakeRegistry, node, reReplicateOnce, stepDeps } from './support/repair-steps.ts';

const T = 1_700_000_000_000;
const data = Buffer.from('fragment bytes');

/** A stored image of one fragment, recorded on a and b. */
async function storedFragment(catalog: Store['catalog'], name: string) {
  const u = await catalog.insertUpload(uploadRow(name, `up-${name}`, T, data.length, data.length));
  const f = { id: `f-${name}`, imageId: u.id, imageKey: u.imageKey, idx: 0, size: data.length, sha256: 'ab'.repeat(32) };
  expect(await catalog.recordOnlyFragmentAndComplete(f, ['a', 'b'], f.sha256, T)).toBe('done');
  return (await catalog.fragmentById(f.id))!;
}

/** In-place repair of b's copy of `fragment`, through `catalog`, its rewrite done by `put`. */
async function repairInPlace(catalog: object, fragmentId: string, put: () => Promise<void> = async () => undefined, log?: Logger) {
  const repair = createInPlaceRepair({
    ...stepDeps(() => T),
    ...(log && { log }),
    catalog: catalog as never,
    registry: fakeRegistry([node('a'), node('b')]) as never,
    replicas: { read: async () => data } as never,
    client: { putFragment: put } as never,
  });
  expect(repair.report({ fragmentId, datanodeId: 'b', reason: 'corrupt' })).toBe(true);
  await repair.pass({ stopped: false });
}

await describeOnEngines('a repair whose recording fails releases its write intent', (store) => {
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
    const fragment = await storedFragment(store().catalog, 'copied');
    await reReplicateOntoC(fragment, false);
    expect((await store().catalog.dueDeletions(T)).map((d) => `${d.fragmentId}@${d.datanodeId}:${d.reason}`)).toEqual([
      `${fragment.id}@c:unrecorded-write`,
    ]);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual(['c']);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
  });

  // A regression guard for the re-replication path, not a test of the release: the committed
  // moveReplicas already dropped c's intent, so the release has none to turn into a deletion (and
  // never reaches its check for a recorded replica). It holds as long as nothing on the error path
  // queues the copies it added by another way.
  it('re-replication (regression guard): a recording that committed although its answer was lost keeps its copy', async () => {
    const fragment = await storedFragment(store().catalog, 'committed');
    await reReplicateOntoC(fragment, true);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b', 'c']);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual([]);
  });

  it('in-place repair: the rewritten copy, still recorded, loses its intent and is not deleted', async () => {
    const fragment = await storedFragment(store().catalog, 'rewritten');
    await repairInPlace(refusingMoves(false), fragment.id);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual([]);
    expect((await store().catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
  });

  it('in-place repair: a rewrite that failed before its recording did says so (the recording is what the pass logs)', async () => {
    const fragment = await storedFragment(store().catalog, 'both-failed');
    const warned: { msg: string; err?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warned.push(JSON.parse(line)) });
    const put = async () => {
      throw new Error('datanode b refused the rewrite (test)');
    };
    await repairInPlace(refusingMoves(false), fragment.id, put, log);
    expect(warned.map((w) => `${w.msg}: ${w.err}`)).toEqual([
      'replica rewrite failed, then its recording: datanode b refused the rewrite (test)',
      'replica repair failed; will retry: the index refused the write (test)',
    ]);
    expect(await store().catalog.deletionTargetsOf(fragment.id)).toEqual([]);
  });
});

const pg = await postgresAvailable();
describe.skipIf(!pg.adminUrl)(`a repair whose lease moved on while it wrote releases its write intent on PostgreSQL${skipNote(pg)}`, () => {
  const db = useTestDatabase();
  let store: PostgresMetadataStore;
  beforeAll(async () => {
    store = await openPostgresMetadata(db.url, pino({ level: 'silent' }));
    for (const id of ['a', 'b', 'c']) await store.datanodes.insert(id, `http://127.0.0.1:1/${id}`, T);
  });
  afterAll(() => store.close());

  /** The lease's fencing token: each step below runs under 6, and `leaseMoves` hands the lease to another coordinator (7) mid-step. */
  const leaseIs = async (token: number) => void (await store.sql(`UPDATE leader_lease SET token = $1 WHERE name = 'background'`, [token]));
  const leaseMoves = () => leaseIs(7);

  it('re-replication: its recording is FENCED, and the copy it wrote becomes an unrecorded write to delete', async () => {
    await leaseIs(6);
    const fragment = await storedFragment(store.catalog, 'fenced-copy');
    const replicas = {
      read: async () => data,
      // The intent taken under the lease, the copy written as the lease moves on.
      write: async (id: string) => (await store.catalog.addWriteIntents(id, ['c']), await leaseMoves(), ['c']),
    };
    await withFence('6', () => reReplicateOnce(store.catalog, replicas, fragment, () => T));
    expect((await store.catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
    // Released by the step itself, not by a retry: the intent is gone, a deletion queued in its place.
    expect((await store.catalog.dueDeletions(T)).map((d) => `${d.fragmentId}@${d.datanodeId}:${d.reason}`)).toEqual([
      `${fragment.id}@c:unrecorded-write`,
    ]);
    expect((await store.sql(`SELECT count(*)::int AS n FROM write_intents`, []))[0]!.n).toBe(0);
  });

  it('in-place repair: its recording is FENCED, and the rewritten copy, still recorded, loses its intent', async () => {
    await leaseIs(6);
    const fragment = await storedFragment(store.catalog, 'fenced-rewrite');
    await withFence('6', () => repairInPlace(store.catalog, fragment.id, leaseMoves));
    expect((await store.catalog.replicasOf(fragment.id)).sort()).toEqual(['a', 'b']);
    expect(await store.catalog.deletionTargetsOf(fragment.id)).toEqual([]);
  });
});
