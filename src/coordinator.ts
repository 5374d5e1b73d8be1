// The coordinator's services wired together (the seed's server.py + cluster.py): the index,
// the datanode registry and client, the monitor, uploads, images and the replica deleter.
import path from 'node:path';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from './config.ts';
import { badInput } from './errors.ts';
import { createEventBus } from './events.ts';
import { createImages } from './images.ts';
import { createUploads } from './uploads.ts';
import { openDatabase } from './metadata/database.ts';
import { catalog as createCatalog } from './metadata/catalog.ts';
import { datanodeRows } from './metadata/datanodes.ts';
import { createDatanodeClient } from './cluster/datanode-client.ts';
import { createMonitor } from './cluster/monitor.ts';
import { createRegistry, type DatanodeView } from './cluster/registry.ts';
import { createReplicaDeleter } from './cluster/replica-deletions.ts';
import { createReplicas } from './cluster/replicas.ts';

export const INDEX_FILE = 'index.sqlite';

export function createCoordinator(config: CoordinatorConfig, log: Logger) {
  const db = openDatabase(path.join(config.dataDir, INDEX_FILE));
  const catalog = createCatalog(db);
  // No write is in flight at start: intents left by a crash become due deletions.
  const orphaned = catalog.releaseAllWriteIntents(Date.now());
  if (orphaned > 0) log.info({ replicas: orphaned }, 'cleaning replica writes interrupted by the last shutdown');

  const registry = createRegistry({ rows: datanodeRows(db), downAfterFailures: config.downAfterFailures, thresholds: config.thresholds });
  const client = createDatanodeClient({ secret: config.secret });
  const events = createEventBus();
  const deleter = createReplicaDeleter({ catalog, registry, client, log });
  const replicas = createReplicas({ catalog, registry, client, log });
  const monitor = createMonitor({
    registry,
    client,
    events,
    intervalMs: config.healthIntervalMs,
    log,
    // A datanode back from DOWN gets the deletions it missed.
    onStatusChange: (id) => registry.isLive(id) && void deleter.kick(),
  });
  const uploads = createUploads({ config, catalog, registry, replicas, deleter, events, log });
  const images = createImages({ catalog, replicas, deleter, events, log });

  let sweeper: NodeJS.Timeout | undefined;

  async function registerDatanode(url: string): Promise<DatanodeView> {
    let normalized: string;
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http');
      normalized = parsed.origin + parsed.pathname.replace(/\/+$/, '');
    } catch {
      throw badInput(`"${url}" is not an http(s) URL.`);
    }
    const { datanode, created } = registry.register(normalized);
    if (created) {
      log.info({ datanode: datanode.id, url: normalized }, 'datanode registered');
      await monitor.sampleNow(datanode.id); // its first status (and event) right away
    }
    return registry.get(datanode.id)!;
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
    uploads,
    images,
    registerDatanode,

    async start() {
      for (const url of config.datanodes) await registerDatanode(url);
      monitor.start();
      deleter.start();
      const sweepMs = Math.min(config.uploadTtlSec, 60) * 1000;
      sweeper = setInterval(() => uploads.sweepExpired(), sweepMs);
    },

    async stop() {
      monitor.stop();
      if (sweeper) clearInterval(sweeper);
      await deleter.stop();
      client.close();
      db.close();
    },
  };
}

export type Coordinator = ReturnType<typeof createCoordinator>;
