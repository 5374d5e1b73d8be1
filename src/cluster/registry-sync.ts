// Several coordinators on one database, one datanode registry each: every coordinator knows every
// datanode and its current status. The leader decides statuses (its monitor samples them); the
// others take them from its relayed samples and status changes. A datanode registered, moved,
// drained or removed through any coordinator is announced, and every coordinator re-reads the
// rows then, after the event channel was lost, and every `intervalMs` as a safety net.
import type { Logger } from 'pino';
import type { DatanodeRow } from '../metadata/datanodes.ts';
import type { EventBus } from '../events.ts';
import type { Registry, StatusChange } from './registry.ts';

/** The safety net's period: a missed event leaves a coordinator's view stale this long at most. */
export const REGISTRY_RELOAD_MS = 10_000;

export function createRegistrySync({
  registry,
  readRows,
  events,
  isLeader,
  log,
  onStatusChange,
  onNewDatanode,
  intervalMs = REGISTRY_RELOAD_MS,
}: {
  registry: Registry;
  readRows: () => Promise<DatanodeRow[]>;
  events: EventBus;
  /** Whether this coordinator samples the datanodes itself now (then it keeps its own statuses). */
  isLeader: () => boolean;
  log: Logger;
  /** A status changed here because another coordinator said so (the local reactions to it). */
  onStatusChange: (change: StatusChange) => void;
  /** The leader learnt of a datanode registered through another coordinator: sample it now. */
  onNewDatanode: (id: string) => void;
  intervalMs?: number;
}) {
  let timer: NodeJS.Timeout | undefined;
  let reloading: Promise<void> | undefined;
  let again = false;

  const changed = (change: StatusChange | undefined) => {
    if (!change) return;
    log.info(
      { datanode: change.datanode.id, previous: change.previous, status: change.status },
      'datanode status changed (told by the leader)',
    );
    onStatusChange(change);
  };

  async function reloadOnce(): Promise<void> {
    const leader = isLeader();
    const before = new Set(registry.all().map((n) => n.id));
    const readSince = Date.now();
    const changes = registry.reload(await readRows(), { statuses: !leader, readSince });
    for (const c of changes) changed(c);
    if (!leader) return;
    for (const n of registry.all()) if (!before.has(n.id)) onNewDatanode(n.id);
  }

  /** One reload at a time; a request during one runs one more after it. */
  function reload(why: string): Promise<void> {
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = reloadOnce()
      .catch((err: Error) => log.warn({ err: err.message, why }, 'could not re-read the datanodes'))
      .finally(() => {
        reloading = undefined;
        if (again) {
          again = false;
          void reload(why);
        }
      });
    return reloading;
  }

  events.onRemote((message) => {
    if (message.topic === 'coordinatorNotice' && message.notice.kind === 'datanodeChanged') return void reload('announced');
    if (isLeader()) return; // the leader's own statuses come from its own samples
    if (message.topic === 'datanodeHealth') changed(registry.apply(message.sample.datanode));
    else if (message.topic === 'clusterEvent' && message.event.kind === 'DatanodeStatusChanged')
      changed(registry.apply(message.event.datanode));
  });
  events.onRestored(() => void reload('event channel back'));

  return {
    reload,
    start() {
      timer = setInterval(() => void reload('periodic'), intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await reloading;
    },
  };
}

export type RegistrySync = ReturnType<typeof createRegistrySync>;
