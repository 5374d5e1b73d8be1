// The replica deleter's own decisions, with a stubbed index, registry and datanode client
// (metadata-contract tests settleRecordedWrites itself): its second look before it deletes an
// unrecorded write (a file the index records as a replica is settled by the index, not deleted: a deletion
// queued before releases checked for a replica, or one a recording raced), and a datanode back
// live while the index refuses writes.
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { RESUME_FAILED } from '../src/cluster/replica-deletions.ts';
import type { ReplicaDeletion } from '../src/metadata/catalog.ts';
import type { ReplicaKey } from '../src/metadata/catalog/deletion-queue.ts';
import { stubDeleter } from './support/stub-deleter.ts';

const deletion = (fragmentId: string, reason: ReplicaDeletion['reason']): ReplicaDeletion => ({
  fragmentId,
  datanodeId: 'n1',
  attempts: 0,
  reason,
  imageKey: reason === 'image-deleted' ? 'img' : null,
});

it('settles without deleting an unrecorded write whose file the index records as a replica, asking once per round', async () => {
  let due = [deletion('recorded', 'unrecorded-write'), deletion('stray', 'unrecorded-write'), deletion('of-image', 'image-deleted')];
  const acked: string[] = [];
  const asked: string[][] = [];
  const catalog = {
    dueDeletions: async () => due.splice(0),
    ackDeletions: async (ds: ReplicaDeletion[]) => void acked.push(...ds.map((d) => d.fragmentId)),
    settleRecordedWrites: async (keys: ReplicaKey[]) => {
      asked.push(keys.map((k) => k.fragmentId));
      return keys.filter((k) => k.fragmentId === 'recorded').map((k) => ({ ...k }));
    },
  };
  const { deleter, sent } = stubDeleter(catalog);
  deleter.start();
  await deleter.idle();
  // A round of an image's deletions alone asks nothing more.
  due = [deletion('of-another-image', 'image-deleted')];
  await deleter.kick();
  await deleter.idle();
  await deleter.stop();
  expect(sent.sort()).toEqual(['of-another-image', 'of-image', 'stray']);
  // The index settled 'recorded' itself (with its check): acknowledging it by file could remove a
  // deletion that replaced its row meanwhile.
  expect(acked.sort()).toEqual(['of-another-image', 'of-image', 'stray']);
  expect(asked).toEqual([['recorded', 'stray']]);
});

it('datanodeLive never rejects: an index that cannot take the write leaves the deletions due at their next check', async () => {
  // A rejection here went unhandled (the status change does not wait) and killed the coordinator
  // when PostgreSQL was cut or the lease had moved (FENCED) as a datanode came back.
  const warned: string[] = [];
  const catalog = {
    resumeDeletionsOn: async () => {
      throw Object.assign(new Error('write refused: fencing token 1 is stale'), { code: 'FENCED' });
    },
    dueDeletions: async () => [],
    ackDeletions: async () => {},
  };
  const log = pino({ level: 'warn' }, { write: (line: string) => void warned.push(JSON.parse(line).msg) });
  const { deleter } = stubDeleter(catalog, { log });
  deleter.start();
  await expect(deleter.datanodeLive('n1')).resolves.toBeUndefined();
  await deleter.stop();
  expect(warned).toEqual([RESUME_FAILED]);
});
