// kill -9 of a real datanode process while uploads and downloads run: the upload completes (the
// writes cut short fall back to another datanode), every download is byte-identical, and once
// the datanode is back on its data dir it holds no partial fragment and no orphan file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses, type DatanodeProcess } from './support/datanode-process.ts';
import { settleDeletions } from './support/disk.ts';
import { until } from './support/poll.ts';
import { auditDisks } from './support/faults.ts';
import { bytesOf, download, sha256, uploadChunked } from './support/images.ts';

const FRAGMENT = 64 * 1024;
let dir: string;
let processes: DatanodeProcess[];
let coordinator: Awaited<ReturnType<typeof startCoordinatorOver>>;
/** The shape the support helpers take, over real datanode processes. */
let cluster: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-kill-io-'));
  processes = await Promise.all([0, 1, 2].map((i) => startDatanodeProcess({ dataDir: join(dir, `datanode-${i}`), secret: TEST_SECRET })));
  // Real datanodes measure the real machine: a busy CI box must not make them DEGRADED.
  const thresholds = { cpuPercent: 101, memoryPercent: 101, diskPercent: 101 };
  coordinator = await startCoordinatorOver(
    processes.map((p) => p.url),
    { secret: TEST_SECRET, fragmentSize: FRAGMENT, repairAfterSec: 3600, downAfterFailures: 3, thresholds },
  );
  const nodes = processes.map((p, index) => ({ index, dataDir: join(dir, `datanode-${index}`), url: p.url }));
  cluster = Object.assign(asCluster(coordinator), { nodes });
}, 60_000);

afterAll(async () => {
  await coordinator?.close();
  await stopAllDatanodeProcesses();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kill -9 of a datanode during uploads and downloads', () => {
  it('completes the upload, serves every download byte-identical, and leaves no partial or orphan file', async () => {
    const existing = bytesOf(40 * FRAGMENT + 11, 1);
    await uploadChunked(cluster, 'existing.png', existing, { concurrency: 4 });
    const fresh = bytesOf(120 * FRAGMENT + 3, 2);

    const victim = 1;
    let downloads = 0;
    let stopReading = false;
    const reading = (async () => {
      while (!stopReading) {
        const { res, body } = await download(cluster, 'existing.png');
        expect(res.status).toBe(200);
        expect(sha256(body)).toBe(sha256(existing));
        downloads += 1;
      }
    })();
    const uploading = uploadChunked(cluster, 'fresh.png', fresh, { concurrency: 8, multipart: true });
    // Kill once the upload is well under way.
    const received = async () => {
      const sql = `SELECT count(*) AS n FROM fragments f JOIN images i ON i.id = f.image_id WHERE i.name = 'fresh.png'`;
      return Number((await cluster.app.indexSql(sql))[0].n);
    };
    await until(async () => (await received()) >= 30, 'upload under way', 20_000);
    processes[victim].kill('SIGKILL');
    const image = await uploading;
    stopReading = true;
    await reading;
    expect(downloads).toBeGreaterThan(0);
    expect(image.sha256).toBe(sha256(fresh));
    expect(sha256((await download(cluster, 'fresh.png')).body)).toBe(sha256(fresh));

    // Back on the same dir and port: no partial fragment under any id, nothing unaccounted for.
    processes[victim] = await startDatanodeProcess({
      dataDir: join(dir, `datanode-${victim}`),
      secret: TEST_SECRET,
      port: Number(new URL(processes[victim].url).port),
    });
    await until(() => cluster.app.registry.all().every((n) => n.status === 'UP'), 'every datanode UP', 15_000);
    await settleDeletions(cluster, 15_000);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
    for (const [name, bytes] of [
      ['existing.png', existing],
      ['fresh.png', fresh],
    ] as const) {
      expect(sha256((await download(cluster, name)).body)).toBe(sha256(bytes));
    }
  }, 90_000);
});
