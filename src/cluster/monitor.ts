// The health monitor: samples every datanode's /health each interval,
// applies the status rules through the registry and publishes samples and status changes.
// Each answer's proven identity feeds the cluster id (regained from the datanodes when lost).
import type { Logger } from 'pino';
import type { HealthThresholds } from '../config.ts';
import type { DatanodeHealthReport } from '../shared/datanode-api.ts';
import { overThresholds } from './health-rules.ts';
import type { ClusterIdentity } from './cluster-identity.ts';
import type { DatanodeClient } from './datanode-client.ts';
import type { DatanodeView, Registry } from './registry.ts';
import type { EventBus } from '../events.ts';
import type { Scheduler } from '../shared/scheduler.ts';

/** Which resources made a datanode DEGRADED, with their figures: "cpu 91%, disk 96%". */
function degradedBy(report: DatanodeHealthReport | undefined, thresholds: HealthThresholds | undefined): string {
  if (!report || !thresholds) return '';
  const figures: Record<string, number> = { cpu: report.cpuPercent, memory: report.memoryPercent, disk: report.diskPercent };
  return overThresholds(report, thresholds)
    .map((r) => `${r} ${Math.round(figures[r])}%`)
    .join(', ');
}

type StatusChange = NonNullable<ReturnType<Registry['recordSample']>>;

/** An identity check that newly failed, or passes again, is logged once. */
function logIdentityChange(log: Logger, current: DatanodeView, faultBefore: string | null): void {
  if ((current.identityFault ?? null) === faultBefore) return;
  if (current.identityFault)
    log.warn(
      { datanode: current.id, url: current.url, fault: current.identityFault },
      'datanode identity check failed: nothing is read, written or deleted through it',
    );
  else log.info({ datanode: current.id, url: current.url }, 'datanode identity proven again');
}

/**
 * Every sample is one message, a failed one too; before its first status a datanode is not
 * live, shown as DOWN (as `datanodes` shows it).
 */
function publishSample(events: EventBus, current: DatanodeView, report: DatanodeHealthReport | undefined): void {
  events.sample({
    at: new Date(),
    datanode: { ...current },
    status: current.status ?? 'DOWN',
    cpuPercent: report ? report.cpuPercent : null,
    memoryPercent: report ? report.memoryPercent : null,
    diskPercent: report ? report.diskPercent : null,
  });
}

/** A status change: logged and announced as DatanodeStatusChanged, naming what made it DEGRADED. */
function announceChange(
  { log, events, thresholds }: { log: Logger; events: EventBus; thresholds?: HealthThresholds },
  current: DatanodeView,
  change: StatusChange,
  report: DatanodeHealthReport | undefined,
): void {
  const over = change.status === 'DEGRADED' ? degradedBy(report, thresholds) : '';
  log.info(
    { datanode: current.id, url: current.url, previous: change.previous, status: change.status, ...(over ? { over } : {}) },
    'datanode status changed',
  );
  events.emit({
    kind: 'DatanodeStatusChanged',
    message: `Datanode ${current.id} (${current.url}) is ${change.status}${over ? ` (${over})` : ''}${change.previous ? ` (was ${change.previous})` : ''}.`,
    datanode: change.datanode,
    previous: change.previous,
    status: change.status,
  });
}

export function createMonitor({
  registry,
  client,
  events,
  scheduler,
  intervalMs,
  log,
  onStatusChange,
  thresholds,
  clusterIdentity,
  leads = () => true,
}: {
  /** Whether this coordinator samples now (several coordinators: only the leader does). */
  leads?: () => boolean;
  clusterIdentity?: ClusterIdentity;
  scheduler: Scheduler;
  registry: Registry;
  /** The DEGRADED thresholds, to say which resource is over (messages only). */
  thresholds?: HealthThresholds;
  client: DatanodeClient;
  events: EventBus;
  intervalMs: number;
  log: Logger;
  onStatusChange?: (id: string) => void;
}) {
  // Rounds never overlap (the next starts an interval after the last ended); the timeout keeps a
  // hung datanode from stretching a round, with a floor so a busy machine's slow answer is no failure.
  const timeoutMs = Math.max(1000, Math.min(intervalMs, 5000));

  async function sampleOne(id: string): Promise<void> {
    const node = registry.get(id);
    if (!node) return;
    let report;
    try {
      report = await client.health(node.url, timeoutMs);
    } catch (err) {
      log.debug({ datanode: id, err: (err as Error).message }, 'health sample failed');
    }
    if (loop.state === 'stopped') return; // the coordinator is closing: its index may be closed already
    if (report?.nodeId !== undefined && !report.identityUnproven) clusterIdentity?.learn(report.clusterId ?? null, id);
    const faultBefore = registry.get(id)?.identityFault ?? null;
    const change = registry.recordSample(id, report, clusterIdentity?.current());
    const current = registry.get(id);
    if (!current) return;
    if (report) logIdentityChange(log, current, faultBefore);
    publishSample(events, current, report);
    if (change) {
      announceChange({ log, events, thresholds }, current, change, report);
      onStatusChange?.(id);
    }
  }

  const round = async () => {
    await Promise.all(registry.all().map((n) => sampleOne(n.id)));
    clusterIdentity?.settle(); // every known datanode has answered (or not): a new cluster may mint its id
  };

  // Not waited for on stop: a hung datanode must not hold up a shutdown (late answers are dropped above).
  const loop = scheduler.loop('health monitor', round, { everyMs: intervalMs, abandonOnStop: true });

  return {
    start: loop.start,
    /** Samples one datanode now (after it registers), outside the regular rounds; only when leading. */
    sampleNow: (id: string) => (leads() ? sampleOne(id) : Promise.resolve()),
    /** A round now (or right after the one under way). */
    kick: loop.kick,
    stop: loop.stop,
  };
}

export type Monitor = ReturnType<typeof createMonitor>;
