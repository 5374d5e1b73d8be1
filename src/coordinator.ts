// The coordinator's services wired together: the index,
// the datanode registry and client, the monitor, uploads, images and the replica deleter.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from './config.ts';
import { badInput, TesseraError } from './errors.ts';
import { createEventBus } from './events.ts';
import { createImages } from './images.ts';
import { createUploads } from './uploads.ts';
import { openDatabase } from './metadata/database.ts';
import { createCatalog } from './metadata/catalog.ts';
import { datanodeRows } from './metadata/datanodes.ts';
import { clusterIdentityRow } from './metadata/cluster-identity.ts';
import { createClusterIdentity } from './cluster/cluster-identity.ts';
import { replicationQueries } from './metadata/replication.ts';
import { createDatanodeClient } from './cluster/datanode-client.ts';
import { createMonitor } from './cluster/monitor.ts';
import { createRegistry, type DatanodeView } from './cluster/registry.ts';
import { createReplicaDeleter } from './cluster/replica-deletions.ts';
import { createReplicas, type BadReplica } from './cluster/replicas.ts';
import { createRepairer } from './cluster/repair.ts';
import { createScrubber } from './cluster/scrubber.ts';
import { createReconciler } from './cluster/reconciler.ts';
import { createAuth } from './auth/service.ts';
import { createImageRecords } from './cluster/image-records.ts';
import { createIndexRebuild } from './cluster/index-rebuild.ts';
import { normalizeHttpUrl } from './shared/flag-values.ts';
import { createScheduler } from './shared/scheduler.ts';
import { createRenditionServices } from './renditions/index.ts';

/** The start-up rebuild is waited for this long before the coordinator serves (answering INDEX_REBUILDING until it ends). */
const REBUILD_WAIT_AT_START_MS = 5000;

export const INDEX_FILE = 'index.sqlite';
/** Present while a coordinator runs on the data dir: found at start, the last run ended uncleanly. */
const RUNNING_MARKER = 'coordinator.running';

export function createCoordinator(config: CoordinatorConfig, log: Logger) {
  const db = openDatabase(path.join(config.dataDir, INDEX_FILE), { synchronous: config.indexSynchronous });
  const marker = path.join(config.dataDir, RUNNING_MARKER);
  // A crash or power failure may have cost the index its last transactions (synchronous=NORMAL):
  // the datanodes' records have them, so the index is re-checked at start.
  const uncleanStop = fs.existsSync(marker);
  const catalog = createCatalog(db);
  // Before the HTTP surface listens: the first start writes the admin token file.
  const auth = createAuth(db, config, log);
  auth.ensureAdminToken();
  // No write is in flight at start: intents left by a crash become due deletions.
  const orphaned = catalog.releaseAllWriteIntents(Date.now());
  if (orphaned > 0) log.info({ replicas: orphaned }, 'cleaning replica writes interrupted by the last shutdown');

  const registry = createRegistry({ rows: datanodeRows(db), downAfterFailures: config.downAfterFailures, thresholds: config.thresholds });
  const clusterIdentity = createClusterIdentity({ row: clusterIdentityRow(db), log });
  const client = createDatanodeClient({
    secret: config.secret,
    ca: config.datanodeCaFile === undefined ? undefined : fs.readFileSync(config.datanodeCaFile),
    identity: {
      clusterId: () => clusterIdentity.current(),
      expectedNodeId: (url) => registry.byUrl(url)?.nodeId ?? undefined,
    },
  });
  const events = createEventBus();
  // Every background loop of the coordinator runs on this scheduler (one place to gate them).
  const scheduler = createScheduler({ log });
  const deleter = createReplicaDeleter({ catalog, registry, client, log, scheduler, replicationFactor: config.replicationFactor });
  const replicas = createReplicas({ catalog, registry, client, log });
  const records = createImageRecords({ registry, client, log, replicationFactor: config.replicationFactor });
  const monitor = createMonitor({
    clusterIdentity,
    registry,
    client,
    events,
    scheduler,
    intervalMs: config.healthIntervalMs,
    log,
    thresholds: config.thresholds,
    onStatusChange: (id) => {
      // A datanode back from DOWN gets the deletions it missed; repair that failed for want of
      // a copy or a target may succeed now.
      const node = registry.get(id);
      if (registry.isLive(id)) void deleter.datanodeLive(id);
      if (registry.isLive(id) && unreadByRebuild.has(id) && !rebuildingAtStart) void recheck(`datanode ${id}, unread by the last rebuild, is back`);
      // A partitioned datanode does not refuse, it hangs: its writes in flight fall back now.
      else if (node?.status === 'DOWN') client.abandon(node.url);
      repairer.datanodesChanged();
    },
  });
  const repairer = createRepairer({
    catalog,
    replication: replicationQueries(db),
    registry,
    replicas,
    client,
    events,
    log,
    scheduler,
    replicationFactor: config.replicationFactor,
    repairAfterMs: config.repairAfterSec * 1000,
    bytesPerSecond: config.repairBytesPerSec,
  });
  const reportBad = (bad: BadReplica) => repairer.report(bad);
  const scrubber = createScrubber({ catalog, registry, client, log, scheduler, bytesPerSecond: config.scrubBytesPerSec, pauseMs: config.scrubPauseSec * 1000, onBad: reportBad });
  const indexRebuild = createIndexRebuild({ catalog, registry, client, records, log });
  /** Datanodes unread by the last rebuild: when one is live again, the index is re-checked. */
  let unreadByRebuild = new Set<string>();
  let rebuildingAtStart = false;
  const recheck = (why: string) =>
    indexRebuild.run(why).then(
      (report) => void (unreadByRebuild = new Set(report.unreadDatanodes)),
      (err: Error) => log.error({ err: err.message }, 'index re-check failed'),
    );
  const reconciler = createReconciler({
    catalog,
    registry,
    client,
    records,
    deleter,
    log,
    scheduler,
    intervalMs: config.reconcileIntervalSec * 1000,
    graceMs: config.orphanGraceSec * 1000,
    replicationFactor: config.replicationFactor,
    maxDeletions: config.reconcileMaxDeletions,
    onBad: reportBad,
    onIndexDisagrees: () => void recheck('the datanodes\' records disagree with the index'),
  });
  const uploads = createUploads({ config, catalog, registry, replicas, records, deleter, events, log });
  const images = createImages({ catalog, replicas, records, deleter, events, log, onBadReplica: reportBad });
  const { imageMedia, renditions, renditionCache } = createRenditionServices({ config, db, catalog, replicas, deleter, images, log });
  // Expired uploads and idle quota owners; a failed sweep (SQLITE_BUSY) is logged and retried.
  const sweepMs = Math.min(config.uploadTtlSec, 60) * 1000;
  const sweeper = scheduler.loop(
    'expiry sweep',
    async () => {
      uploads.sweepExpired();
      auth.quotas.sweepOwners();
    },
    { everyMs: sweepMs, firstAfterMs: sweepMs },
  );

  let stopped = false;

  async function registerDatanode(url: string): Promise<DatanodeView> {
    const normalized = normalizeHttpUrl(url);
    if (normalized === undefined) throw badInput(`"${url}" is not an http(s) URL.`);
    // Its data dir's id, if it answers and proves it (the client drops an unproven id): the same
    // disks behind a new URL stay the same datanode, and no other server can take its entry.
    const nodeId = await client.health(normalized, 2000).then((h) => h.nodeId, () => undefined);
    const { datanode, created, movedFrom } = registry.register(normalized, nodeId);
    if (movedFrom) log.info({ datanode: datanode.id, from: movedFrom, to: normalized }, 'datanode moved to a new URL');
    if (created) {
      log.info({ datanode: datanode.id, url: normalized }, 'datanode registered');
      await monitor.sampleNow(datanode.id); // its first status (and event) right away
      clusterIdentity.settle();
    }
    return registry.get(datanode.id)!;
  }

  /**
   * At start: the cluster id from the index, else regained from the known datanodes' proven
   * answers, else (none of them joined a cluster yet) minted. Undefined when no datanode answered:
   * then the monitor keeps learning, and no datanode obeys a write or delete from us meanwhile.
   */
  async function establishClusterId(): Promise<string | undefined> {
    if (clusterIdentity.current() !== undefined) return clusterIdentity.current();
    await Promise.all(
      registry.all().map(async (node) => {
        const answer = await client.health(node.url, 2000).catch(() => undefined);
        if (answer?.nodeId !== undefined && !answer.identityUnproven) clusterIdentity.learn(answer.clusterId ?? null, node.id);
      }),
    );
    const id = clusterIdentity.settle();
    if (id === undefined) log.warn('cluster id not established yet (no datanode answered): writes and deletes wait until one does');
    return id;
  }

  const requireDatanode = (id: string) => {
    const node = registry.get(id);
    if (!node) throw new TesseraError('DATANODE_NOT_FOUND', `No datanode has id "${id}".`);
    return node;
  };

  /** Decommission, step 1: no new replicas; its fragments are copied elsewhere, then trimmed from it. */
  function drainDatanode(id: string, drain: boolean): DatanodeView {
    requireDatanode(id);
    const node = registry.setDraining(id, drain)!;
    log.info({ datanode: id, draining: drain }, drain ? 'draining datanode' : 'datanode takes replicas again');
    void repairer.kick();
    return node;
  }

  /** Decommission, step 2: forget a datanode that holds no replica. */
  function removeDatanode(id: string): boolean {
    const node = requireDatanode(id);
    if (!node.draining) throw new TesseraError('DATANODE_NOT_DRAINED', `Datanode ${id} is not draining; drainDatanode it first.`);
    const held = catalog.replicaCountOn(id);
    if (held > 0) throw new TesseraError('DATANODE_NOT_DRAINED', `Datanode ${id} still holds ${held} replica${held === 1 ? '' : 's'}; drain it and wait until it holds none.`);
    catalog.purgeDeletionsOn(id);
    registry.remove(id);
    log.info({ datanode: id }, 'datanode removed');
    return true;
  }

  return {
    config,
    log,
    db,
    catalog,
    registry,
    client,
    events,
    monitor,
    deleter,
    replicas,
    records,
    indexRebuild,
    /** True while the start-up rebuild runs: requests answer INDEX_REBUILDING. */
    rebuilding: () => rebuildingAtStart,
    repairer,
    scrubber,
    reconciler,
    uploads,
    images,
    imageMedia,
    renditions,
    renditionCache,
    auth,
    clusterIdentity,
    establishClusterId,
    registerDatanode,
    drainDatanode,
    removeDatanode,

    async start() {
      for (const url of config.datanodes) await registerDatanode(url);
      await establishClusterId();
      monitor.start();
      // An empty index (a lost or new coordinator disk) is rebuilt from the datanodes' records
      // before anything deletes; --recheck-index does the same for a restored, stale one.
      fs.writeFileSync(marker, `${process.pid}\n`);
      const empty = catalog.imageCount() === 0;
      if (!empty && !config.recheckIndex && !uncleanStop) return startLoops();
      rebuildingAtStart = true;
      const why = empty ? 'the index is empty' : config.recheckIndex ? '--recheck-index' : 'the last run did not stop cleanly';
      const rebuilt = indexRebuild.run(why, { startup: true }).then(
        (report) => void (unreadByRebuild = new Set(report.unreadDatanodes)),
        (err: Error) => log.error({ err: err.message }, 'index rebuild failed; the index is served as it is'),
      ).finally(() => {
        rebuildingAtStart = false;
        if (!stopped) startLoops();
      });
      const waited = await Promise.race([rebuilt.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), REBUILD_WAIT_AT_START_MS).unref())]);
      if (!waited) log.info('index rebuild continues; requests answer INDEX_REBUILDING until it ends');
    },

    async stop() {
      stopped = true;
      await Promise.all([scheduler.stop(), indexRebuild.idle(), records.flushTombstones()]);
      client.close();
      db.close();
      fs.rmSync(marker, { force: true });
    },
  };

  function startLoops() {
      deleter.start();
      repairer.start();
      reconciler.start();
      if (config.scrubBytesPerSec > 0) scrubber.start();
      sweeper.start();
  }
}

export type Coordinator = ReturnType<typeof createCoordinator>;
