// The replica deleter without a known cluster id: every datanode would refuse its deletions
// (409 CLUSTER_ID_REQUIRED) and back them off, so it leaves them queued and tries again once the
// id is known. Stubbed index, registry and datanode client: only the deleter's decision is tested.
import { expect, it } from 'vitest';
import type { ReplicaDeletion } from '../src/metadata/catalog.ts';
import { stubDeleter } from './support/stub-deleter.ts';

it('leaves the deletions queued while the cluster id is unknown, and sends them once it is known', async () => {
  const queued: ReplicaDeletion[] = [{ fragmentId: 'f1', datanodeId: 'n1', attempts: 0, reason: 'image-deleted', imageKey: 'img' }];
  const identity = { clusterId: undefined as string | undefined };
  const catalog = {
    dueDeletions: async () => [...queued],
    ackDeletions: async (ds: ReplicaDeletion[]) => {
      for (const d of ds) queued.splice(queued.indexOf(d), 1);
    },
    settleRecordedWrites: async () => [],
  };
  const { deleter, sent } = stubDeleter(catalog, { clusterIdentity: { refresh: async () => identity.clusterId } });
  deleter.start();
  await deleter.kick();
  await deleter.idle();
  expect(sent).toEqual([]);
  expect(queued.map((d) => d.fragmentId)).toEqual(['f1']);
  identity.clusterId = 'cluster-1';
  await deleter.kick();
  await deleter.idle();
  await deleter.stop();
  expect(sent).toEqual(['f1']);
  expect(queued).toEqual([]);
});
