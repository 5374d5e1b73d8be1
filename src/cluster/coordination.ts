// How a coordinator shares the cluster with others. On SQLite it is alone: it always leads, and
// nothing here costs anything. On PostgreSQL several coordinators serve the API together, but the
// background work runs on one of them at a time: the holder of the lease (leader-lease.ts), once
// it has done what a new leader does first (the index rebuild when the index is empty). The
// scheduler asks gate() before every pass and runs the pass under fence(); membership.ts keeps
// the heartbeats, and the leader cleans up after coordinators that stopped beating.
import type { Logger } from 'pino';
import { withFence } from '../shared/fence.ts';
import type { SqlQuery } from '../shared/sql-query.ts';
import { alwaysLeader, createLeaderLease, postgresLeaseStore, type LeaderLease } from './leader-lease.ts';
import { createMembership, postgresMembershipStore, type Membership } from './membership.ts';

export interface Coordination {
  /** True when several coordinators may share the metadata (PostgreSQL). */
  readonly shared: boolean;
  /** Background passes may run in this process now: the lease is held and the new leader's duties are done. */
  gate(): boolean;
  /** The fencing token background passes run under (undefined on SQLite: nothing to fence). */
  fence(): string | undefined;
  /** Starts the heartbeat and the lease; `onLeader` runs (fenced) each time this process becomes leader, before any pass. */
  start(onLeader: () => Promise<void>): void;
  stop(): Promise<void>;
  /** The leader's sweep: releases the write intents of coordinators that stopped heartbeating. */
  sweepDeparted(release: (ids: string[]) => Promise<number>): Promise<void>;
}

export interface CoordinationOptions {
  /** This coordinator's instance id (instance-id.ts). */
  instanceId: string;
  /** SQL on the shared PostgreSQL database; undefined on SQLite. */
  sql?: SqlQuery;
  leaseTtlMs: number;
  log: Logger;
}

/** SQLite: alone, always leading, unfenced. */
function alone(): Coordination {
  const lease = alwaysLeader();
  return {
    shared: false,
    gate: lease.isLeader,
    fence: lease.token,
    start: () => {},
    stop: async () => {},
    sweepDeparted: async () => {},
  };
}

export function createCoordination({ instanceId, sql, leaseTtlMs, log }: CoordinationOptions): Coordination {
  if (sql === undefined) return alone();
  /** The token whose leader duties are done; passes wait for it (they run on an index the duties made whole). */
  let ready: string | undefined;
  let onLeader: () => Promise<void> = async () => {};
  const membership: Membership = createMembership({ store: postgresMembershipStore(sql), id: instanceId, everyMs: leaseTtlMs / 3, log });
  const lease: LeaderLease = createLeaderLease({
    store: postgresLeaseStore(sql),
    holder: instanceId,
    ttlMs: leaseTtlMs,
    log,
    onAcquired(token) {
      void withFence(token, onLeader)
        .catch((err: Error) => log.error({ err: err.message }, 'the new leader could not finish taking over; background work goes on'))
        .finally(() => {
          if (lease.token() === token) ready = token;
        });
    },
    onLost: () => void (ready = undefined),
  });
  return {
    shared: true,
    gate: () => ready !== undefined && lease.token() === ready,
    fence: lease.token,
    start(duties) {
      onLeader = duties;
      membership.start();
      lease.start();
    },
    async stop() {
      ready = undefined;
      await Promise.all([lease.stop(), membership.stop()]);
    },
    sweepDeparted: (release) => membership.sweep(release),
  };
}
