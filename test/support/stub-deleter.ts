// A replica deleter over a stubbed index, one live datanode that deletes whatever it is sent, and
// a silent log (unless one is given): for tests of the deleter's own decisions.
import { pino, type Logger } from 'pino';
import { createReplicaDeleter } from '../../src/cluster/replica-deletions.ts';
import { createScheduler } from '../../src/shared/scheduler.ts';

export function stubDeleter(
  catalog: object,
  options: Pick<Parameters<typeof createReplicaDeleter>[0], 'clusterIdentity'> & { log?: Logger } = {},
) {
  const sent: string[] = [];
  const client = {
    deleteBatch: async (_url: string, batch: { fragments: { id: string }[] }) => {
      sent.push(...batch.fragments.map((f) => f.id));
      return batch.fragments.map(() => 'deleted');
    },
  };
  const deleter = createReplicaDeleter({
    catalog: catalog as never,
    registry: { get: () => ({ url: 'http://datanode' }), isLive: () => true } as never,
    client: client as never,
    log: options.log ?? pino({ level: 'silent' }),
    scheduler: createScheduler(),
    replicationFactor: 2,
    pollMs: 60_000,
    clusterIdentity: options.clusterIdentity,
  });
  return { deleter, sent };
}
