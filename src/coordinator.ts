// The coordinator's services wired together: the index, the datanode registry and client, the
// background work (monitor, deleter, repair, scrub, reconciliation, expiry) on one scheduler, and
// the services the API uses (images, uploads, the cluster, auth). createCoordinator hands the
// HTTP layer only those services; the rest is `internals`, for tests and tools.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from './config.ts';
import { createEventBus, type EventBus } from './events.ts';
import { postgresNotifyTransport } from './events-postgres.ts';
import { linkCoordinators, reportBadReplica } from './coordinator-links.ts';
import { agreeOnClusterSecret, authKeysOn } from './cluster/secret-agreement.ts';
import { createImageService, type ImageService } from './image-service.ts';
import { createUploads, type Uploads } from './uploads.ts';
import type { Db } from './metadata/database.ts';
import { isPostgresUrl, openMetadata, type AsyncCatalog as Catalog, type MetadataStore } from './metadata/store.ts';
import { loadOrMintInstanceId } from './cluster/instance-id.ts';
import { createClusterIdentity, type ClusterIdentity } from './cluster/cluster-identity.ts';
import { createDatanodeClient, type DatanodeClient } from './cluster/datanode-client.ts';
import { createMonitor, type Monitor } from './cluster/monitor.ts';
import { createRegistry, type Registry } from './cluster/registry.ts';
import { createReplicaDeleter, type ReplicaDeleter } from './cluster/replica-deletions.ts';
import { createReplicas, type BadReplica, type Replicas } from './cluster/replicas.ts';
import { createRepairer, type Repairer } from './cluster/repair.ts';
import { createScrubber } from './cluster/scrubber.ts';
import { createReconciler } from './cluster/reconciler.ts';
import { createAuth, type Auth } from './auth/service.ts';
import { createClusterService, type ClusterService } from './cluster/cluster-service.ts';
import { createImageRecords, type ImageRecords } from './cluster/image-records.ts';
import { createIndexRebuild, type IndexRebuild, type RebuildReport } from './cluster/index-rebuild.ts';
import { createScheduler, type Scheduler } from './shared/scheduler.ts';
import type { SqlQuery } from './shared/sql-query.ts';
import { createCoordination, type Coordination } from './cluster/coordination.ts';
import { createRenditionServices } from './renditions/index.ts';

/** The start-up rebuild is waited for this long before the coordinator serves (answering INDEX_REBUILDING until it ends). */
const REBUILD_WAIT_AT_START_MS = 5000;

export const INDEX_FILE = 'index.sqlite';
/** Present while a coordinator runs on the data dir: found at start, the last run ended uncleanly. */
const RUNNING_MARKER = 'coordinator.running';

/** The parts behind the services: for tests and tools (bench, index checks), never for the HTTP layer. */
export interface CoordinatorInternals {
  /** Whether this coordinator leads the background work now (always on SQLite), and its fencing token. */
  coordination: Pick<Coordination, 'shared' | 'gate' | 'fence'>;
  /** The SQLite index (undefined on PostgreSQL): for SQLite-only tests and tools. */
  db: Db | undefined;
  /** Every table the coordinator keeps (SQLite or PostgreSQL). */
  metadata: MetadataStore;
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  clusterIdentity: ClusterIdentity;
  scheduler: Scheduler;
  monitor: Monitor;
  deleter: ReplicaDeleter;
  replicas: Replicas;
  records: ImageRecords;
  repairer: Repairer;
  scrubber: ReturnType<typeof createScrubber>;
  reconciler: ReturnType<typeof createReconciler>;
  indexRebuild: IndexRebuild;
  renditionCache: RenditionServices['renditionCache'];
}

type RenditionServices = ReturnType<typeof createRenditionServices>;

/** What the HTTP layer serves from: the API's services and the coordinator's lifecycle. */
export interface Coordinator {
  config: CoordinatorConfig;
  log: Logger;
  auth: Auth;
  events: EventBus;
  images: ImageService;
  uploads: Uploads;
  cluster: ClusterService;
  /** An image's format and dimensions. */
  imageMedia: RenditionServices['imageMedia'];
  /** Resized and re-encoded variants of stored images. */
  renditions: RenditionServices['renditions'];
  /** True while the start-up rebuild runs: requests answer INDEX_REBUILDING. */
  rebuilding(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  internals: CoordinatorInternals;
}

/** The index opened, the last run's unfinished writes released, the admin token written. */
async function openIndex(config: CoordinatorConfig, log: Logger, shared: SharedMetadata | undefined) {
  const location = config.metadata ?? path.join(config.dataDir, INDEX_FILE);
  const metadata = await openMetadata(location, log, {
    synchronous: config.indexSynchronous,
    instanceId: shared?.instanceId,
    timeoutMs: config.metadataTimeoutSec * 1000,
    backgroundCheckpoints: true,
  });
  try {
    return await prepareIndex(config, log, metadata);
  } catch (err) {
    // The index's connection and its checkpoint thread go with the failed start.
    await metadata.close().catch(() => {});
    throw err;
  }
}

async function prepareIndex(config: CoordinatorConfig, log: Logger, metadata: MetadataStore) {
  const db = 'db' in metadata ? (metadata.db as Db) : undefined;
  const marker = path.join(config.dataDir, RUNNING_MARKER);
  // A crash or power failure may have cost the index its last transactions (synchronous=NORMAL):
  // the datanodes' records have them, so the index is re-checked at start.
  const uncleanStop = fs.existsSync(marker);
  const catalog = metadata.catalog;
  // Before the HTTP surface listens: the first start writes the admin token file.
  const auth = await createAuth(metadata, config, log);
  await auth.ensureAdminToken();
  // No write of this coordinator is in flight at start: intents its last run left become due deletions.
  // Said as it happened: a write the index recorded needs no cleaning, only its intent goes.
  const released = await catalog.releaseAllWriteIntents(Date.now());
  if (released.deletions > 0)
    log.info({ deletions: released.deletions, recorded: released.recorded }, 'cleaning replica writes interrupted by the last shutdown');
  else if (released.recorded > 0)
    log.info({ recorded: released.recorded }, 'write intents of recorded replicas left by the last shutdown dropped');
  return { metadata, db, marker, uncleanStop, catalog, auth };
}

/** The registry of datanodes, the cluster's identity, and the client that talks to them. */
async function connectDatanodes(config: CoordinatorConfig, metadata: MetadataStore, log: Logger, events: EventBus, leads: () => boolean) {
  const registry = createRegistry({
    rows: metadata.datanodes,
    initial: await metadata.datanodes.all(),
    onPersistError: (err) => log.error({ err: err.message }, 'could not store a datanode row'),
    downAfterFailures: config.downAfterFailures,
    thresholds: config.thresholds,
    // Registered, moved, drained or removed here: the other coordinators re-read the rows.
    onChange: events.relayed ? (id) => events.tellOthers({ kind: 'datanodeChanged', id }) : undefined,
  });
  const clusterIdentity = createClusterIdentity({
    row: metadata.clusterIdentity,
    initial: await metadata.clusterIdentity.load(),
    log,
    mayMint: leads,
  });
  const client = createDatanodeClient({
    secret: config.secret,
    ca: config.datanodeCaFile === undefined ? undefined : fs.readFileSync(config.datanodeCaFile),
    identity: {
      clusterId: () => clusterIdentity.current(),
      expectedNodeId: (url) => registry.byUrl(url)?.nodeId ?? undefined,
    },
  });
  return { registry, clusterIdentity, client };
}

/**
 * At start: the cluster id from the index, else regained from the known datanodes' proven
 * answers, else (none of them joined a cluster yet) minted. Undefined when no datanode answered:
 * then the monitor keeps learning, and no datanode obeys a write or delete from us meanwhile.
 */
async function establishClusterId({
  clusterIdentity,
  registry,
  client,
  log,
}: {
  clusterIdentity: ClusterIdentity;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
}): Promise<string | undefined> {
  if (clusterIdentity.current() !== undefined) return clusterIdentity.current();
  await Promise.all(
    registry.all().map(async (node) => {
      const answer = await client.health(node.url, 2000).catch(() => undefined);
      if (answer?.nodeId !== undefined && !answer.identityUnproven) clusterIdentity.learn(answer.clusterId ?? null, node.id);
    }),
  );
  const id = clusterIdentity.settle();
  if (id === undefined)
    log.warn(
      'cluster id not established yet (no datanode answered): writes are refused with CLUSTER_NOT_READY and deletions stay queued until a datanode answers or another coordinator establishes it',
    );
  return id;
}

/** The index checked against the datanodes' records: at start when needed, and again when a datanode the last check could not read is back. */
function createIndexChecks(indexRebuild: IndexRebuild, log: Logger) {
  /** Datanodes unread by the last rebuild: when one is live again, the index is re-checked. */
  let unread = new Set<string>();
  let atStart = false;
  const remember = (report: RebuildReport) => void (unread = new Set(report.unreadDatanodes));
  const recheck = (why: string) =>
    indexRebuild.run(why).then(remember, (err: Error) => log.error({ err: err.message }, 'index re-check failed'));
  return {
    rebuildingAtStart: () => atStart,
    recheck,
    /** Whether live datanode `id` went unread by the last check (and no start-up rebuild runs): then it is re-checked. */
    recheckIfUnread(id: string): void {
      if (unread.has(id) && !atStart) void recheck(`datanode ${id}, unread by the last rebuild, is back`);
    },
    /** Rebuilds at start, waiting for it a while; `then` runs once it ends, however it ends. */
    async rebuildAtStart(why: string, then: () => void): Promise<void> {
      atStart = true;
      const rebuilt = indexRebuild
        .run(why, { startup: true })
        .then(remember, (err: Error) => log.error({ err: err.message }, 'index rebuild failed; the index is served as it is'))
        .finally(() => {
          atStart = false;
          then();
        });
      const waited = await Promise.race([
        rebuilt.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), REBUILD_WAIT_AT_START_MS).unref()),
      ]);
      if (!waited) log.info('index rebuild continues; requests answer INDEX_REBUILDING until it ends');
    },
  };
}

/** The audits of the stored replicas on the background scheduler: the scrub and the reconciliation against the datanodes' records. */
function createAudits(
  config: CoordinatorConfig,
  log: Logger,
  {
    catalog,
    registry,
    client,
    records,
    deleter,
    scheduler,
    reportBad,
    checks,
  }: {
    catalog: Catalog;
    registry: Registry;
    client: DatanodeClient;
    records: ImageRecords;
    deleter: ReplicaDeleter;
    scheduler: Scheduler;
    reportBad: (bad: BadReplica) => void;
    checks: ReturnType<typeof createIndexChecks>;
  },
) {
  const scrubber = createScrubber({
    catalog,
    registry,
    client,
    log,
    scheduler,
    bytesPerSecond: config.scrubBytesPerSec,
    pauseMs: config.scrubPauseSec * 1000,
    onBad: reportBad,
  });
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
    onIndexDisagrees: () => void checks.recheck("the datanodes' records disagree with the index"),
  });
  return { scrubber, reconciler };
}

/** The background work on one scheduler: health, deletions, repair, scrub, reconciliation, and the index checks. */
function createBackgroundWork(
  config: CoordinatorConfig,
  log: Logger,
  {
    metadata,
    catalog,
    registry,
    clusterIdentity,
    client,
    events,
    coordination,
  }: {
    metadata: MetadataStore;
    catalog: Catalog;
    registry: Registry;
    clusterIdentity: ClusterIdentity;
    client: DatanodeClient;
    events: EventBus;
    coordination: Coordination;
  },
) {
  // Every background loop of the coordinator runs on this scheduler (one place to gate them): on
  // PostgreSQL only while this coordinator holds the background lease, each pass under its token.
  const scheduler = createScheduler({ log, gate: coordination.gate, fence: coordination.fence });
  const deleter = createReplicaDeleter({
    catalog,
    registry,
    client,
    log,
    scheduler,
    replicationFactor: config.replicationFactor,
    clusterIdentity,
  });
  const replicas = createReplicas({ catalog, registry, client, log, clusterIdentity });
  const records = createImageRecords({ registry, client, log, replicationFactor: config.replicationFactor });
  const indexRebuild = createIndexRebuild({ catalog, registry, client, records, log });
  const checks = createIndexChecks(indexRebuild, log);
  const monitor = createMonitor({
    clusterIdentity,
    registry,
    client,
    events,
    scheduler,
    log,
    intervalMs: config.healthIntervalMs,
    thresholds: config.thresholds,
    leads: coordination.gate,
    onStatusChange: (id) => {
      // A datanode back from DOWN gets the deletions it missed; repair that failed for want of
      // a copy or a target may succeed now.
      const node = registry.get(id);
      if (registry.isLive(id)) {
        void deleter.datanodeLive(id);
        checks.recheckIfUnread(id);
      } else if (node?.status === 'DOWN') client.abandon(node.url); // a partitioned datanode hangs: its writes in flight fall back now
      repairer.datanodesChanged();
    },
  });
  const repairer = createRepairer({
    catalog,
    registry,
    replicas,
    client,
    events,
    log,
    scheduler,
    replication: metadata.replication,
    replicationFactor: config.replicationFactor,
    repairAfterMs: config.repairAfterSec * 1000,
    bytesPerSecond: config.repairBytesPerSec,
  });
  const reportBad = reportBadReplica(events, coordination.gate, (bad: BadReplica) => repairer.report(bad));
  const { scrubber, reconciler } = createAudits(config, log, { catalog, registry, client, records, deleter, scheduler, reportBad, checks });
  return { scheduler, deleter, replicas, records, indexRebuild, checks, monitor, repairer, reportBad, scrubber, reconciler };
}

/** Expired uploads and idle quota owners; a failed sweep (SQLITE_BUSY) is logged and retried. */
function expirySweep(config: CoordinatorConfig, scheduler: Scheduler, uploads: Uploads, auth: Auth) {
  const sweepMs = Math.min(config.uploadTtlSec, 60) * 1000;
  return scheduler.loop(
    'expiry sweep',
    async () => {
      await uploads.sweepExpired();
      await auth.quotas.sweepOwners();
    },
    { everyMs: sweepMs, firstAfterMs: sweepMs },
  );
}

/**
 * The start of the one coordinator on SQLite: an empty index (a lost or new coordinator disk) is
 * rebuilt from the datanodes' records before anything deletes; --recheck-index does the same for
 * a restored, stale one, and so does a start after a run that did not stop cleanly (its marker).
 */
async function startAlone(
  config: CoordinatorConfig,
  {
    marker,
    uncleanStop,
    catalog,
    checks,
  }: { marker: string; uncleanStop: boolean; catalog: Catalog; checks: ReturnType<typeof createIndexChecks> },
  startLoops: () => void,
): Promise<void> {
  fs.writeFileSync(marker, `${process.pid}\n`);
  const empty = (await catalog.imageCount()) === 0;
  if (!empty && !config.recheckIndex && !uncleanStop) return startLoops();
  await checks.rebuildAtStart(
    empty ? 'the index is empty' : config.recheckIndex ? '--recheck-index' : 'the last run did not stop cleanly',
    startLoops,
  );
}

/**
 * In-process on SQLite; on PostgreSQL through the database (LISTEN/NOTIFY), so a subscriber on any
 * coordinator hears every coordinator's events.
 */
function eventBusFor(config: CoordinatorConfig, shared: SharedMetadata | undefined, log: Logger): EventBus {
  const url = shared?.url ?? config.metadata;
  if (!shared || url === undefined) return createEventBus();
  return createEventBus({ relay: { transport: postgresNotifyTransport(url), origin: shared.instanceId, log } });
}

/** Several coordinators: registry, revocations and bad replicas kept in step with the others (coordinator-links.ts). */
function linkParts(
  config: CoordinatorConfig,
  sql: SqlQuery,
  {
    events,
    registry,
    clusterIdentity,
    metadata,
    coordination,
    client,
    monitor,
    auth,
    repairer,
    log,
  }: {
    events: EventBus;
    registry: Registry;
    clusterIdentity: ClusterIdentity;
    metadata: MetadataStore;
    coordination: Coordination;
    client: DatanodeClient;
    monitor: Monitor;
    auth: Auth;
    repairer: Repairer;
    log: Logger;
  },
) {
  auth.onRevoked((id) => events.tellOthers({ kind: 'tokenRevoked', id }));
  // A revocation told while the event channel was down is found by asking the tokens again.
  events.onRestored(() => {
    auth.tokens.forget(); // every token is read again at its next request
    void (async () => {
      for (const id of auth.quotas.livePrincipals()) {
        if (id === 'anonymous' || id === 'cluster') continue; // not tokens
        if (!(await auth.stillValid({ kind: 'token', id, name: '', role: 'read' }))) auth.quotas.endAllOf(id);
      }
    })().catch((err: Error) => log.warn({ err: err.message }, 'could not re-check live tokens after the event channel came back'));
  });
  const sync = linkCoordinators({
    events,
    registry,
    readRows: () => metadata.datanodes.all(),
    isLeader: coordination.gate,
    abandon: (url) => client.abandon(url),
    sampleNow: (id) => monitor.sampleNow(id),
    revokedElsewhere: (id) => auth.revokedElsewhere(id),
    refreshClusterId: () => clusterIdentity.refresh(),
    repair: (bad) => repairer.report(bad),
    log,
  });
  return {
    /** Refuses another cluster secret than the other coordinators', then listens to them. */
    async start() {
      await agreeOnClusterSecret(authKeysOn(sql), config.secret);
      await events.start();
      sync.start();
    },
    stop: () => sync.stop(),
  };
}

/** How long a coordinator on PostgreSQL waits at start to see whether it leads (then samples first). */
const LEAD_AT_START_WAIT_MS = 3000;

/** Whether `gate` opens within `ms`. */
async function leadsWithin(gate: () => boolean, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; !gate(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() > until) return false;
  return true;
}

/** How often the leader looks for coordinators that stopped heartbeating (membership.ts). */
const SWEEP_DEPARTED_MS = 30_000;

/** --metadata postgres://…: this coordinator is one of several (its SQL is set once the store is open). */
function sharedFor(config: CoordinatorConfig): SharedMetadata | undefined {
  if (config.metadata === undefined || !isPostgresUrl(config.metadata)) return undefined;
  const notYet: SqlQuery = () => Promise.reject(new Error('the PostgreSQL store is not open yet'));
  return { sql: notYet, instanceId: loadOrMintInstanceId(config.dataDir), url: config.metadata };
}

/** On PostgreSQL: the database's SQL and this coordinator's instance id (loadOrMintInstanceId, also given to openMetadata). */
export interface SharedMetadata {
  sql: SqlQuery;
  instanceId: string;
  /** The database's URL for the events' own connections (default: config.metadata). */
  url?: string;
}

/** Alone on SQLite (always leading); on PostgreSQL one of several, leading while it holds the background lease. */
function coordinationFor(config: CoordinatorConfig, log: Logger, shared: SharedMetadata | undefined): Coordination {
  const leaseTtlMs = config.leaseTtlSec * 1000;
  return createCoordination({ instanceId: shared?.instanceId ?? 'local', sql: shared?.sql, leaseTtlMs, log });
}

/**
 * The start of a coordinator sharing PostgreSQL: every loop is started but passes only on the
 * leader. What a new leader does first, under its token, before any pass: rebuild an empty index
 * from the datanodes' records (nothing deletes before), and the --recheck-index this process was
 * started with. No running marker: PostgreSQL keeps every committed transaction.
 */
async function startShared(
  config: CoordinatorConfig,
  {
    coordination,
    catalog,
    checks,
    scheduler,
    monitor,
  }: { coordination: Coordination; catalog: Catalog; checks: ReturnType<typeof createIndexChecks>; scheduler: Scheduler; monitor: Monitor },
  startLoops: () => void,
): Promise<void> {
  let recheck = config.recheckIndex;
  scheduler
    .loop('coordinator sweep', () => coordination.sweepDeparted(async (ids) => await catalog.releaseWriteIntentsOf(ids, Date.now())), {
      everyMs: SWEEP_DEPARTED_MS,
      firstAfterMs: SWEEP_DEPARTED_MS,
    })
    .start();
  startLoops();
  coordination.start(async () => {
    const empty = (await catalog.imageCount()) === 0;
    if (!empty && !recheck) return;
    recheck = false;
    await checks.recheck(empty ? 'the index is empty (new leader)' : '--recheck-index (new leader)');
  });
  // Serve once the datanodes are sampled, as a lone coordinator does: when this one takes the
  // lease at start, its first uploads must find them live (bounded: another may lead).
  if (await leadsWithin(coordination.gate, LEAD_AT_START_WAIT_MS)) await monitor.kick();
}

export async function createCoordinator(config: CoordinatorConfig, log: Logger, given?: SharedMetadata): Promise<Coordinator> {
  const shared = given ?? sharedFor(config);
  const opened = await openIndex(config, log, shared);
  try {
    return await assembleCoordinator(config, log, shared, opened);
  } catch (err) {
    // A start that failed after the index opened leaves no connection or checkpoint thread behind.
    await opened.metadata.close().catch(() => {});
    throw err;
  }
}

type OpenedIndex = Awaited<ReturnType<typeof openIndex>>;

async function assembleCoordinator(config: CoordinatorConfig, log: Logger, shared: SharedMetadata | undefined, opened: OpenedIndex) {
  const { metadata, db, marker, uncleanStop, catalog, auth } = opened;
  if (shared && 'sql' in metadata) shared.sql = (metadata as { sql: SqlQuery }).sql;
  const events = eventBusFor(config, shared, log);
  const coordination = coordinationFor(config, log, shared);
  const { registry, clusterIdentity, client } = await connectDatanodes(config, metadata, log, events, coordination.gate);
  const work = createBackgroundWork(config, log, { metadata, catalog, registry, clusterIdentity, client, events, coordination });
  const { scheduler, deleter, replicas, records, indexRebuild, checks, monitor, repairer, reportBad, scrubber, reconciler } = work;
  const uploads = createUploads({ config, catalog, registry, replicas, records, deleter, events, log });
  const images = createImageService({ catalog, replicas, records, deleter, events, log, onBadReplica: reportBad });
  const { imageMedia, renditions, renditionCache } = createRenditionServices({ config, metadata, catalog, replicas, deleter, images, log });
  const { replicationFactor } = config;
  const cluster = createClusterService({ catalog, registry, client, monitor, clusterIdentity, repairer, replicationFactor, log });
  const sweeper = expirySweep(config, scheduler, uploads, auth);
  const links =
    shared &&
    linkParts(config, shared.sql, { events, registry, clusterIdentity, metadata, coordination, client, monitor, auth, repairer, log });
  let stopped = false;
  const startLoops = () => {
    if (stopped) return;
    deleter.start();
    repairer.start();
    reconciler.start();
    if (config.scrubBytesPerSec > 0) scrubber.start();
    sweeper.start();
  };

  return {
    config,
    log,
    auth,
    events,
    images,
    uploads,
    cluster,
    imageMedia,
    renditions,
    rebuilding: checks.rebuildingAtStart,
    async start() {
      await links?.start(); // listening before anything happens that others must hear of
      for (const url of config.datanodes) await cluster.register(url);
      await establishClusterId({ clusterIdentity, registry, client, log });
      monitor.start();
      if (coordination.shared) return startShared(config, { coordination, catalog, checks, scheduler, monitor }, startLoops);
      await startAlone(config, { marker, uncleanStop, catalog, checks }, startLoops);
    },
    async stop() {
      stopped = true;
      await Promise.all([scheduler.stop(), indexRebuild.idle(), records.flushTombstones()]);
      await coordination.stop(); // after the passes ended: the next leader need not wait for the expiry
      await links?.stop();
      await events.close();
      client.close();
      await registry.persisted();
      await metadata.close();
      if (!coordination.shared) fs.rmSync(marker, { force: true });
    },
    internals: {
      coordination,
      metadata,
      db,
      catalog,
      registry,
      client,
      clusterIdentity,
      scheduler,
      monitor,
      deleter,
      replicas,
      records,
      repairer,
      scrubber,
      reconciler,
      indexRebuild,
      renditionCache,
    },
  };
}
