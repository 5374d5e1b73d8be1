// An in-process coordinator over datanodes started elsewhere (real datanode processes): for
// tests where the datanodes' processes, ports and data dirs are the point (identity, trust).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { makeConfig, type CoordinatorConfig } from '../../src/config.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/start-coordinator.ts';
import type { TestCluster } from './cluster.ts';
import { createGraphQLClient } from './graphql.ts';
import { readAdminToken, rememberToken } from './tokens.ts';
import { withInternals } from './coordinator-view.ts';
import { dropMetadataFor, metadataFor } from './test-metadata.ts';

export async function startCoordinatorOver(datanodes: string[], config: Partial<CoordinatorConfig> & { secret: string | undefined }) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-coord-'));
  // With TESSERA_TEST_METADATA=postgres, each data dir's index is a database of its own (test-metadata.ts).
  const start = async (overrides: Partial<CoordinatorConfig> = {}) => {
    const dataDir = overrides.dataDir ?? config.dataDir ?? join(dir, 'coordinator');
    const metadata = await metadataFor(dataDir);
    return startCoordinator(
      makeConfig({
        ...(metadata ? { metadata } : {}),
        dataDir,
        port: 0,
        healthIntervalMs: 200,
        downAfterFailures: 2,
        datanodes,
        ...config,
        ...overrides,
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
  };
  let running: RunningCoordinator = await start();
  // A new coordinator writes its admin token where the one before may have left another.
  const remember = () => rememberToken(running.url, readAdminToken(join(dir, 'coordinator')));
  remember();
  const handle = {
    dir,
    get url() {
      return running.url;
    },
    get app() {
      return withInternals(running.app);
    },
    gql: createGraphQLClient(() => running.url),
    async stop() {
      await running.stop();
    },
    async close() {
      await running.stop();
      await dropMetadataFor(join(dir, 'coordinator'));
      await rm(dir, { recursive: true, force: true });
    },
    /** Replaces the running coordinator (same data dir unless given). */
    async restart(overrides: Partial<CoordinatorConfig> = {}) {
      await running.stop();
      running = await start(overrides);
      remember();
    },
  };
  return handle;
}

/** The image helpers (support/images.ts) need only the URL and the GraphQL client. */
export const asCluster = (c: { url: string; gql: TestCluster['gql'] }) => c as unknown as TestCluster;
