// Every writer that releases write intents on a path that did not record its copies (the rendition
// cache, re-replication, in-place repair; the replica writer is covered by replica-hedging) retries a
// release the database refused (a coordinator cut from it), so the copies do not stay covered by
// their intents until the restart. Fakes decide what the index answers; no process is started.
import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { createRenditionCache } from '../src/renditions/cache.ts';
import { createInPlaceRepair } from '../src/cluster/repair-in-place.ts';
import { fakeRegistry, node, reReplicateOnce, stepDeps } from './support/repair-steps.ts';

const log = pino({ level: 'silent' });
const data = Buffer.from('fragment bytes');
const fragment = { id: 'f1', imageId: 1, imageKey: 'k', idx: 0, size: data.length, sha256: 'x'.repeat(64) };

/** Index calls the tests do not care about, and a releaseWriteIntents that fails its first `failures` calls. */
function fakeCatalog(failures: number, extra: Record<string, unknown> = {}) {
  const released: string[] = [];
  const deleted: number[] = [];
  let left = failures;
  const catalog = {
    async releaseWriteIntents(_fragmentId: string, datanodeIds: string[]) {
      if (left-- > 0) throw new Error('METADATA_UNAVAILABLE (fake)');
      released.push(...datanodeIds);
    },
    async deleteImage(id: number) {
      deleted.push(id);
      return true;
    },
    // The fragment's image was deleted while its copies were written: they are not recorded.
    moveReplicas: async () => false,
    replicasOf: async () => ['a', 'b'],
    fragmentById: async () => fragment,
    fragmentsOn: async () => [],
    deletionTargetsOf: async () => [],
    addWriteIntents: async () => undefined,
    ...extra,
  };
  return { catalog, released, deleted };
}

describe('a refused intent release is retried', () => {
  it('by the rendition cache, whose source went while the rendition was written (and its upload row still goes)', async () => {
    const { catalog, released, deleted } = fakeCatalog(1, {
      insertUpload: async () => ({ id: 7, imageKey: 'r7' }),
    });
    const cache = createRenditionCache({
      catalog: catalog as never,
      table: { completeRendition: async () => false } as never,
      replicas: { write: async () => ['a', 'b'] } as never,
      deleter: { kick: async () => undefined } as never,
      replicationFactor: 2,
      budgetBytes: 1 << 20,
      log,
    });
    await cache.put({ id: 1, imageKey: 'k', name: 'src.png' } as never, 'w=10', { data, width: 1, height: 1 }, 'image/png');
    expect(deleted).toEqual([7]);
    await vi.waitFor(() => expect(released).toEqual(['a', 'b']), { timeout: 5000 });
  });

  it('by re-replication, whose fragment was deleted while it was copied', async () => {
    const { catalog, released } = fakeCatalog(1);
    await reReplicateOnce(catalog, { read: async () => data, write: async () => ['c'] }, fragment);
    await vi.waitFor(() => expect(released).toEqual(['c']), { timeout: 5000 });
  });

  it('by in-place repair, whose fragment was deleted while its replica was rewritten (and which repaired nothing)', async () => {
    const { catalog, released } = fakeCatalog(1);
    const emitted: string[] = [];
    const repair = createInPlaceRepair({
      ...stepDeps(),
      events: { emit: (e: { kind: string }) => void emitted.push(e.kind) } as never,
      catalog: catalog as never,
      registry: fakeRegistry([node('a'), node('b')]) as never,
      replicas: { read: async () => data } as never,
      client: { putFragment: async () => undefined } as never,
    });
    expect(repair.report({ fragmentId: fragment.id, datanodeId: 'b', reason: 'corrupt' })).toBe(true);
    await repair.pass({ stopped: false });
    await vi.waitFor(() => expect(released).toEqual(['b']), { timeout: 5000 });
    expect(emitted).toEqual(['ReplicaFault']);
  });
});
