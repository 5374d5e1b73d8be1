// The datanodes the coordinator knows: an in-memory view (read on every placement and read)
// backed by their rows in SQLite, so a restart shows the last stored sample.
import { randomBytes } from 'node:crypto';
import type { DatanodeRow, DatanodeRows, DatanodeStatus } from '../metadata/datanodes.ts';
import type { Async } from '../metadata/async.ts';
import type { HealthThresholds } from '../config.ts';
import { DEFAULT_HYSTERESIS, isLive, settleStatus, type Hysteresis, type Streak } from './health-rules.ts';
import type { HealthAnswer } from './datanode-client.ts';
import { checkIdentity } from './identity-check.ts';
import { mayTakeReplica } from './placement.ts';

/**
 * A row plus what only the running coordinator knows: why the server at its URL is not trusted
 * (identity-check.ts). While that is set the datanode counts as DOWN: nothing is read, written,
 * repaired or deleted through it.
 */
export type DatanodeView = Readonly<DatanodeRow & { identityFault?: string | null }>;
type Node = DatanodeRow & { identityFault?: string | null };

export interface StatusChange {
  datanode: DatanodeView;
  previous: DatanodeStatus | null;
  status: DatanodeStatus;
}

export interface RegistryOptions {
  rows: Async<DatanodeRows>;
  /** The rows at start (rows.all()). */
  initial: readonly DatanodeRow[];
  /** A write of a row failed (logged by the caller; the view here stays). */
  onPersistError?: (err: Error) => void;
  /** A datanode was registered, moved, drained or removed here (other coordinators are told). */
  onChange?: (id: string) => void;
  downAfterFailures: number;
  thresholds: HealthThresholds;
  hysteresis?: Hysteresis;
  now?: () => number;
}

export function createRegistry({
  rows,
  initial,
  onPersistError = () => {},
  downAfterFailures,
  thresholds,
  hysteresis = DEFAULT_HYSTERESIS,
  now = Date.now,
  onChange,
}: RegistryOptions) {
  const nodes = new Map<string, Node>(initial.map((r) => [r.id, { ...r, identityFault: null }]));
  const { persist, persisted } = rowWrites(onPersistError);
  const failures = new Map<string, number>();
  const streaks = new Map<string, Streak>();

  return {
    all: (): DatanodeView[] => [...nodes.values()],
    get: (id: string): DatanodeView | undefined => nodes.get(id),
    byUrl: (url: string): DatanodeView | undefined => [...nodes.values()].find((n) => n.url === url),
    live: (): DatanodeView[] => [...nodes.values()].filter((n) => isLive(n.status)),
    isLive: (id: string) => isLive(nodes.get(id)?.status ?? null),
    /** The datanodes that may take a new replica (placement.ts mayTakeReplica). */
    eligible: (): DatanodeView[] => [...nodes.values()].filter(mayTakeReplica),

    /**
     * Idempotent by URL: the same URL is the same datanode. With the data dir's `nodeId` (from
     * its /health), the same disks behind a new URL are the same datanode too: its URL moves.
     */
    async register(url: string, nodeId?: string) {
      await persisted();
      const outcome = await registerIn(nodes, rows, now(), url, nodeId);
      if (outcome.created || outcome.movedFrom) onChange?.(outcome.datanode.id);
      return outcome;
    },

    /**
     * Applies one health sample (or a failed one) and returns the status change, if any. An
     * answer from the wrong identity (identity-check.ts) makes the datanode DOWN at once, with
     * the reason kept in `identityFault`; its own answer again clears it.
     */
    recordSample(id: string, answer: HealthAnswer | undefined, clusterId?: string): StatusChange | undefined {
      const node = nodes.get(id);
      if (!node) return undefined;
      const owner = answer?.nodeId ? [...nodes.values()].find((n) => n.id !== id && n.nodeId === answer.nodeId) : undefined;
      const verdict = answer ? checkIdentity({ node, answer, clusterId, owner }) : {};
      if (verdict.adoptNodeId) {
        // First answer, or its data dir was replaced: missing replicas are found and repaired by reconciliation.
        node.nodeId = verdict.adoptNodeId;
        void persist(() => rows.identify(id, verdict.adoptNodeId!));
      }
      if (answer) node.identityFault = verdict.fault ?? null;
      // A sample from the wrong identity says nothing about this datanode: it counts as none.
      const sample = verdict.fault ? undefined : answer;
      const failed = sample ? 0 : (failures.get(id) ?? 0) + 1;
      failures.set(id, failed);
      const previous = node.status;
      const settled = settleStatus({
        previous,
        consecutiveFailures: failed,
        sample,
        downAfterFailures,
        thresholds,
        hysteresis,
        streak: streaks.get(id) ?? { toward: null, count: 0 },
      });
      streaks.set(id, settled.streak);
      const status = verdict.fault ? 'DOWN' : settled.status;
      const at = now();
      if (sample) takeSample(node, sample, at);
      const changed = status !== previous && status !== null;
      if (changed) Object.assign(node, { status, statusSince: at });
      if (sample || changed) void persist(() => rows.save({ ...node })); // the newest view when its turn comes
      return changed ? { datanode: { ...node }, previous, status: status! } : undefined;
    },

    setDraining(id: string, draining: boolean) {
      const node = nodes.get(id);
      if (!node) return undefined;
      node.draining = draining;
      void persist(() => rows.setDraining(id, draining));
      onChange?.(id);
      return node as DatanodeView;
    },

    remove(id: string) {
      nodes.delete(id);
      failures.delete(id);
      streaks.delete(id);
      void persist(() => rows.remove(id));
      onChange?.(id);
    },

    /** Resolves once every row write made so far has ended. */
    persisted,

    ...mirror(nodes, [failures, streaks]),
  };
}

export type Registry = ReturnType<typeof createRegistry>;

/** Row writes one after another, in the order they were made: a sample never overtakes the registration. */
function rowWrites(onError: (err: Error) => void) {
  let written: Promise<unknown> = Promise.resolve();
  return {
    persist: (write: () => Promise<unknown>) => (written = written.then(write).catch((err: Error) => onError(err))),
    persisted: () => written.then(() => undefined),
  };
}

/** Other coordinators' views of the datanodes, taken into this one's (several coordinators on one database). */
function mirror(nodes: Map<string, Node>, perNode: Map<string, unknown>[]) {
  return {
    /**
     * Another coordinator's view of a datanode (the leader's, from its samples and status
     * changes): taken as it is. The status change it makes here, if any.
     */
    apply(view: DatanodeView): StatusChange | undefined {
      const node = nodes.get(view.id);
      if (!node) {
        nodes.set(view.id, { ...view });
        return view.status ? { datanode: { ...view }, previous: null, status: view.status } : undefined;
      }
      const previous = node.status;
      Object.assign(node, view);
      return view.status && view.status !== previous ? { datanode: { ...node }, previous, status: view.status } : undefined;
    },

    /**
     * The datanodes as their rows are now (several coordinators: registered, moved, drained or
     * removed through another one). `statuses`: also take each row's status and last sample
     * (a coordinator that does not sample them itself). `readSince`: when the rows were asked
     * for (a datanode registered here since is kept). The status changes this makes.
     */
    reload(current: readonly DatanodeRow[], { statuses, readSince }: { statuses: boolean; readSince: number }): StatusChange[] {
      const changes: StatusChange[] = [];
      const seen = new Set<string>();
      for (const row of current) {
        seen.add(row.id);
        const node = nodes.get(row.id);
        if (!node) {
          nodes.set(row.id, { ...row, identityFault: null });
          if (row.status) changes.push({ datanode: { ...row, identityFault: null }, previous: null, status: row.status });
          continue;
        }
        const { url, nodeId, draining, registeredAt } = row;
        Object.assign(node, { url, nodeId, draining, registeredAt });
        // A relayed sample may be newer than the rows read meanwhile: the newer view stays.
        if (!statuses || row.statusSince < node.statusSince || (row.lastSeenAt ?? 0) < (node.lastSeenAt ?? 0)) continue;
        const previous = node.status;
        Object.assign(node, row);
        if (row.status && row.status !== previous) changes.push({ datanode: { ...node }, previous, status: row.status });
      }
      for (const [id, node] of [...nodes]) {
        if (seen.has(id) || node.registeredAt >= readSince) continue;
        nodes.delete(id);
        for (const m of perNode) m.delete(id);
      }
      return changes;
    },
  };
}

async function registerIn(
  nodes: Map<string, Node>,
  rows: Async<DatanodeRows>,
  at: number,
  url: string,
  nodeId?: string,
): Promise<{ datanode: DatanodeView; created: boolean; movedFrom?: string }> {
  const byNodeId = nodeId ? [...nodes.values()].find((n) => n.nodeId === nodeId) : undefined;
  const byUrl = [...nodes.values()].find((n) => n.url === url);
  if (byNodeId && byNodeId.url !== url && !byUrl) {
    // Only a proven node id gets here (coordinator.ts): the same disks really moved.
    const movedFrom = byNodeId.url;
    byNodeId.url = url;
    await rows.move(byNodeId.id, url);
    return { datanode: byNodeId, created: false, movedFrom };
  }
  if (byUrl) return { datanode: byUrl, created: false };
  const id = `dn-${randomBytes(4).toString('hex')}`;
  try {
    await rows.insert(id, url, at);
  } catch (err) {
    // Registered through another coordinator meanwhile (several on one database): that row stands.
    const theirs = await rows.byUrl(url);
    if (!theirs) throw err;
    const node: Node = { ...theirs, identityFault: null };
    nodes.set(node.id, node);
    return { datanode: node, created: false };
  }
  if (nodeId && !byNodeId) await rows.identify(id, nodeId);
  const row: Node = { ...(await rows.byUrl(url))!, identityFault: null };
  nodes.set(id, row);
  return { datanode: row, created: true };
}

/** A sample's figures onto the datanode's view (saved with its row by the caller). */
function takeSample(node: Node, sample: HealthAnswer, at: number): void {
  Object.assign(node, {
    lastSeenAt: at,
    cpuPercent: sample.cpuPercent,
    memoryPercent: sample.memoryPercent,
    diskPercent: sample.diskPercent,
    diskFreeBytes: sample.diskFreeBytes,
    fragmentCount: sample.fragmentCount,
    storedBytes: sample.storedBytes,
  });
}
