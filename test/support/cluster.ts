// An in-process cluster for tests: N real HTTP datanodes and a real coordinator on 127.0.0.1
// with ephemeral ports, a real SQLite file, all under one temp dir removed on close.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createDatanode, type Datanode } from '../../datanode/server.ts';
import type { SystemSample } from '../../datanode/health.ts';
import { makeConfig, type CoordinatorConfig } from '../../src/config.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/start-coordinator.ts';
import { createGraphQLClient } from './graphql.ts';
import { readAdminToken, rememberToken } from './tokens.ts';
import { withInternals } from './coordinator-view.ts';
import { dropMetadataFor, metadataFor } from './test-metadata.ts';

export const TEST_SECRET = 'test-cluster-secret';

/** Quiet, fixed machine figures: a busy CI machine must not make datanodes DEGRADED by chance. */
export const calmSample = async (_path: string): Promise<SystemSample> => ({
  cpuPercent: 5,
  memoryPercent: 30,
  diskPercent: 40,
  diskFreeBytes: 100e9,
});

export interface TestDatanode {
  index: number;
  dataDir: string;
  url: string;
  node: Datanode;
  close(): Promise<void>;
}

export interface ClusterOptions {
  datanodes?: number;
  config?: Partial<CoordinatorConfig>;
  sampleSystem?: (path: string) => Promise<SystemSample>;
}

export async function startDatanode(dataDir: string, sampleSystem = calmSample, index = 0, port = 0): Promise<TestDatanode> {
  const node = await createDatanode({
    dataDir,
    secret: TEST_SECRET,
    healthIntervalMs: 100,
    sampleSystem,
    logger: pino({ level: 'silent' }),
  });
  const { url } = await node.listen(port, '127.0.0.1');
  return { index, dataDir, url, node, close: () => node.close() };
}

export async function startCluster({ datanodes = 3, config = {}, sampleSystem = calmSample }: ClusterOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-test-'));
  const nodes = await Promise.all(Array.from({ length: datanodes }, (_, i) => startDatanode(join(dir, `datanode-${i}`), sampleSystem, i)));
  const metadata = await metadataFor(join(dir, 'coordinator'));
  const coordinatorConfig = makeConfig({
    ...(metadata ? { metadata } : {}),
    dataDir: join(dir, 'coordinator'),
    port: 0,
    secret: TEST_SECRET,
    fragmentSize: 64 * 1024,
    healthIntervalMs: 100,
    datanodes: nodes.map((n) => n.url),
    ...config,
  });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  let coordinator: RunningCoordinator = await startCoordinator(coordinatorConfig, log);
  // The admin token the coordinator wrote on its first start: sent by every helper by default.
  const adminToken = readAdminToken(coordinatorConfig.adminTokenFile ?? coordinatorConfig.dataDir);
  rememberToken(coordinator.url, adminToken);

  const cluster = {
    dir,
    nodes,
    adminToken,
    get coordinator() {
      return coordinator;
    },
    get url() {
      return coordinator.url;
    },
    get app() {
      return withInternals(coordinator.app);
    },
    gql: createGraphQLClient(() => coordinator.url),
    /** Stops the coordinator and starts a new one on the same index and port. */
    async restartCoordinator(overrides: Partial<CoordinatorConfig> = {}) {
      await coordinator.stop();
      // The old server has cut its keep-alive connections; let fetch's pool see the FINs, or the
      // first request after the restart may be sent on a dead socket ("other side closed").
      await new Promise((resolve) => setTimeout(resolve, 50));
      coordinator = await startCoordinator({ ...coordinatorConfig, port: coordinator.port, ...overrides }, log);
      rememberToken(coordinator.url, readAdminToken(coordinatorConfig.adminTokenFile ?? coordinatorConfig.dataDir));
    },
    async close() {
      await coordinator.stop();
      await Promise.all(nodes.map((n) => n.close().catch(() => {})));
      await dropMetadataFor(join(dir, 'coordinator'));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

export type TestCluster = Awaited<ReturnType<typeof startCluster>>;
