// What the repair steps (re-replication, in-place repair) are given besides the index in tests of
// their own decisions: a registry of datanodes in fixed states, no events, no throttle, a silent log.
import { pino } from 'pino';
import { createReReplication } from '../../src/cluster/re-replication.ts';

/** A datanode as the registry answers it. */
export const node = (id: string, status = 'UP') => ({ id, url: `http://${id}`, status, statusSince: 0, draining: false });

export const fakeRegistry = (nodes: ReturnType<typeof node>[]) => ({
  all: () => nodes,
  get: (id: string) => nodes.find((n) => n.id === id),
  isLive: (id: string) => nodes.find((n) => n.id === id)?.status === 'UP',
  eligible: () => nodes.filter((n) => n.status === 'UP'),
});

/** RepairStepDeps but the index, registry and replicas; `now` the clock (Date.now unless given). */
export const stepDeps = (now: () => number = Date.now) => ({
  events: { emit: () => undefined } as never,
  throttle: { consume: async () => undefined } as never,
  log: pino({ level: 'silent' }),
  retryMs: 3_600_000,
  now,
});

/**
 * One pass of re-replication over this index and these replicas, with `fragment` at risk (its
 * holder b DOWN past repair-after, a and c UP, R = 2): it is copied once, onto what `replicas.write` answers.
 */
export async function reReplicateOnce(catalog: object, replicas: object, fragment: object, now: () => number = Date.now) {
  let batches = 0;
  const reReplication = createReReplication({
    ...stepDeps(now),
    catalog: catalog as never,
    registry: fakeRegistry([node('a'), node('b', 'DOWN'), node('c')]) as never,
    replicas: replicas as never,
    replication: { atRisk: async () => (batches++ === 0 ? [fragment] : []) } as never,
    trimmer: { noteLost: () => undefined, markDue: () => undefined } as never,
    replicationFactor: 2,
    repairAfterMs: 0,
    concurrency: 1,
  });
  reReplication.start();
  await reReplication.pass({ stopped: false });
}
