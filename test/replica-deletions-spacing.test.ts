// The replica deleter's rounds are spaced during a burst of deletes (BURST_ROUNDS), but a pass
// that found nothing due is no round: a lone delete after a periodic empty pass goes at once.
// Stubbed index, registry and datanode client (only the deleter's own decisions are under test),
// and the test's own clock, which never moves: a spacing wait would never end by itself.
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { createReplicaDeleter } from '../src/cluster/replica-deletions.ts';
import type { ReplicaDeletion } from '../src/metadata/catalog.ts';
import { createScheduler } from '../src/shared/scheduler.ts';

afterEach(() => void vi.restoreAllMocks());

it('does not hold a lone delete’s files back for the spacing after a periodic pass that found nothing due', async () => {
  let due: ReplicaDeletion[] = [];
  const acked: ReplicaDeletion[] = [];
  const catalog = {
    dueDeletions: async () => due.splice(0),
    ackDeletions: async (ds: ReplicaDeletion[]) => void acked.push(...ds),
  };
  const registry = { get: () => ({ url: 'http://datanode' }), isLive: () => true };
  const client = { deleteBatch: async (_url: string, batch: { fragments: unknown[] }) => batch.fragments.map(() => 'deleted') };
  const scheduler = createScheduler();
  const deleter = createReplicaDeleter({
    catalog: catalog as never,
    registry: registry as never,
    client: client as never,
    log: pino({ level: 'silent' }),
    scheduler,
    replicationFactor: 2,
    pollMs: 60_000,
    clock: () => 1000,
  });
  deleter.start(); // the first pass: nothing due
  await deleter.idle();

  // The deleter's first spacing wait after the kick: the files acknowledged by then (after its
  // round, the next one is spaced; its clock never moves, so only a stop ends that wait).
  let waited!: () => void;
  const ackedBeforeWaiting = new Promise<string[]>((resolve) => (waited = () => resolve(acked.map((d) => d.fragmentId))));
  const realSetTimeout = globalThis.setTimeout;
  vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
    if (ms !== undefined && ms > 0 && ms <= 500) waited();
    return realSetTimeout(fn, ms);
  }) as typeof setTimeout);

  due = [{ fragmentId: 'f1', datanodeId: 'n1', attempts: 0, reason: 'image-deleted', imageKey: 'img' }];
  void deleter.kick();
  const deletedFirst = await ackedBeforeWaiting;
  vi.restoreAllMocks();
  await deleter.stop();
  expect(deletedFirst).toEqual(['f1']);
});
