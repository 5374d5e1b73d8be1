// A replica deleter over a stubbed index, live datanodes that delete whatever they are sent (or
// answer as `answer` says), and a silent log (unless one is given): for tests of the deleter's
// own decisions.
import { pino, type Logger } from 'pino';
import { createReplicaDeleter } from '../../src/cluster/replica-deletions.ts';
import { createScheduler } from '../../src/shared/scheduler.ts';
import type { DeletionOutcome } from '../../src/shared/datanode-api.ts';

/** One file of a batch as a datanode receives it, and the datanode (its url is `http://<id>`). */
export interface SentDeletion {
  datanode: string;
  id: string;
  reason?: string;
}

export function stubDeleter(
  catalog: object,
  options: Pick<Parameters<typeof createReplicaDeleter>[0], 'clusterIdentity'> & {
    log?: Logger;
    /** The datanode's answer for one file (it may change the index meanwhile: a race); 'deleted' when absent. */
    answer?: (f: SentDeletion) => DeletionOutcome | Promise<DeletionOutcome>;
  } = {},
) {
  const sent: string[] = [];
  const batches: SentDeletion[] = [];
  const client = {
    deleteBatch: async (url: string, batch: { fragments: { id: string; reason?: string }[] }) => {
      sent.push(...batch.fragments.map((f) => f.id));
      const files = batch.fragments.map((f) => ({ datanode: new URL(url).hostname, id: f.id, reason: f.reason }));
      batches.push(...files);
      const outcomes: DeletionOutcome[] = [];
      for (const f of files) outcomes.push(options.answer ? await options.answer(f) : 'deleted');
      return outcomes;
    },
  };
  const deleter = createReplicaDeleter({
    catalog: catalog as never,
    registry: { get: (id: string) => ({ url: `http://${id}` }), isLive: () => true } as never,
    client: client as never,
    log: options.log ?? pino({ level: 'silent' }),
    scheduler: createScheduler(),
    replicationFactor: 2,
    pollMs: 60_000,
    clusterIdentity: options.clusterIdentity,
  });
  return { deleter, sent, batches };
}
