// What the coordinators of one PostgreSQL database tell each other beyond the public events,
// and what each does with it: the datanode registry kept in step (registry-sync.ts), a revoked
// token's live subscriptions ended on every coordinator, a bad replica found by any coordinator's
// read handed to the one that repairs (the leader). On SQLite there is one coordinator and none
// of this runs.
import type { Logger } from 'pino';
import type { EventBus } from './events.ts';
import type { Registry } from './cluster/registry.ts';
import type { DatanodeRow } from './metadata/datanodes.ts';
import type { BadReplica } from './cluster/replicas.ts';
import { createRegistrySync, type RegistrySync } from './cluster/registry-sync.ts';

export interface LinkedParts {
  events: EventBus;
  registry: Registry;
  readRows: () => Promise<DatanodeRow[]>;
  /** Whether this coordinator does the background work now (samples, repairs). */
  isLeader: () => boolean;
  /** A datanode that went DOWN: its writes in flight fall back now. */
  abandon: (url: string) => void;
  sampleNow: (id: string) => Promise<void>;
  /** A token revoked through another coordinator (Auth.revokedElsewhere). */
  revokedElsewhere: (tokenId: string) => void;
  /** This coordinator's cluster id, else the one in the shared row (another coordinator may have established it) adopted (ClusterIdentity.refresh). */
  refreshClusterId: () => Promise<string | undefined>;
  repair: (bad: BadReplica) => void;
  log: Logger;
}

export function linkCoordinators(parts: LinkedParts): RegistrySync {
  const { events, isLeader, log } = parts;
  const catchUpClusterId = clusterIdCatchUp(parts);
  const sync = createRegistrySync({
    registry: parts.registry,
    readRows: () => (catchUpClusterId(), parts.readRows()),
    events,
    isLeader,
    log,
    onStatusChange: (change) => {
      if (change.status === 'DOWN') parts.abandon(change.datanode.url);
    },
    onNewDatanode: (id) => void parts.sampleNow(id).catch(() => {}),
  });
  events.onRemote((message) => {
    catchUpClusterId();
    if (message.topic !== 'coordinatorNotice') return;
    const { notice } = message;
    if (notice.kind === 'tokenRevoked') parts.revokedElsewhere(notice.id);
    else if (notice.kind === 'badReplica' && isLeader()) parts.repair(notice.bad);
  });
  return { ...sync, stop: () => (catchUpClusterId.stop(), sync.stop()) };
}

/** A bad replica found here: repaired here when leading, else by the leader (told). */
export function reportBadReplica(events: EventBus, isLeader: () => boolean, repair: (bad: BadReplica) => void) {
  return (bad: BadReplica) => {
    repair(bad);
    if (events.relayed && !isLeader()) events.tellOthers({ kind: 'badReplica', bad });
  };
}

/** After a failed read of the cluster id: the next try, whether or not anything is said meanwhile. */
const CLUSTER_ID_RETRY_MS = 1000;

/**
 * Until this coordinator knows the cluster id (without it no datanode obeys its writes), it reads
 * the shared row again whenever another coordinator says something, and after a failed read
 * (the database stalled) again shortly: one read at a time (shared with a write that needs the
 * id), none once the id is known.
 */
function clusterIdCatchUp({ refreshClusterId, log }: LinkedParts) {
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  const catchUp = (): void => {
    if (stopped) return;
    clearTimeout(retry);
    retry = undefined;
    refreshClusterId().catch((err: Error) => {
      log.warn({ err: err.message }, 'could not read the cluster id; trying again shortly');
      if (!stopped) retry ??= setTimeout(catchUp, CLUSTER_ID_RETRY_MS).unref();
    });
  };
  return Object.assign(catchUp, {
    stop() {
      stopped = true;
      clearTimeout(retry);
    },
  });
}
