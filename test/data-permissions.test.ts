// Secure by default: what the datanode and coordinator processes write (data dirs, fragment
// files, node and cluster ids, the SQLite index and its WAL) is readable by their user only:
// directories 0700, files 0600, whatever umask they inherit (the runner's, usually 022) and
// even in a pre-existing 0755 data dir.
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess, type CoordinatorProcess } from './support/coordinator-process.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { until } from './support/poll.ts';
import { bytesOf, uploadImage } from './support/images.ts';
import { createGraphQLClient } from './support/graphql.ts';
import type { TestCluster } from './support/cluster.ts';
import { onPostgres } from './support/test-metadata.ts';

const SECRET = 'permissions-secret';
let dir: string;
let datanode: DatanodeProcess;
let coordinator: CoordinatorProcess;
const mode = async (path: string) => (await stat(path)).mode & 0o777;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-perm-'));
  // An existing, world-readable data dir is tightened, not trusted as it is.
  await mkdir(join(dir, 'dn'), { mode: 0o755 });
  datanode = await startDatanodeProcess({ dataDir: join(dir, 'dn'), secret: SECRET });
  coordinator = await startCoordinatorProcess({
    dataDir: join(dir, 'coordinator'),
    secret: SECRET,
    args: ['--datanode', datanode.url, '--replication-factor', '1', '--fragment-size', '4096', '--health-interval-ms', '200'],
  });
}, 60_000);

afterAll(async () => {
  await coordinator?.stop();
  await datanode?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('data permissions', () => {
  it('datanode and coordinator data dirs are 0700 and every file in them 0600', async () => {
    const cluster = { url: coordinator.url, gql: createGraphQLClient(() => coordinator.url) } as unknown as TestCluster;
    await uploadImage(cluster, 'private.png', bytesOf(3 * 4096, 2), 'image/png');
    await until(async () => (await readdir(join(dir, 'dn'))).includes('cluster-id'), 'the datanode joined the cluster');

    const dn = join(dir, 'dn');
    expect(await mode(dn)).toBe(0o700);
    expect(await mode(join(dn, 'fragments'))).toBe(0o700);
    const fragments = await readdir(join(dn, 'fragments'));
    expect(fragments).toHaveLength(3);
    for (const f of fragments) expect(await mode(join(dn, 'fragments', f))).toBe(0o600);
    expect(await mode(join(dn, 'node-id'))).toBe(0o600);
    expect(await mode(join(dn, 'cluster-id'))).toBe(0o600);

    const co = join(dir, 'coordinator');
    expect(await mode(co)).toBe(0o700);
    const files = await readdir(co);
    // On PostgreSQL the index is in the database, not in the data dir.
    if (!onPostgres()) expect(files).toEqual(expect.arrayContaining(['index.sqlite', 'index.sqlite-wal']));
    for (const f of files) expect([f, await mode(join(co, f))]).toEqual([f, 0o600]);
  }, 60_000);
});
