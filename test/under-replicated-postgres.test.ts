// underReplicatedFragments is counted in the index from the datanodes' rows, which the registry
// writes after it changes a status in memory. On PostgreSQL that write takes a round trip (or
// waits, as here, behind another connection's lock on the row): a datanode the coordinator has
// just seen DOWN must count as DOWN in the answer all the same (cluster-service.ts waits for the
// registry's writes). Without that wait the answer is 0 while the write is held. Skipped, with
// the reason, without PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { datanodeIds } from './support/disk.ts';
import { fragmentsOf, stopDatanode, waitForStatus } from './support/faults.ts';
import { bytesOf, uploadImage } from './support/images.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const pg = await postgresAvailable();
const FRAGMENT = 16 * 1024;

describe.skipIf(!pg.adminUrl)(`underReplicatedFragments right after a datanode goes DOWN, on PostgreSQL${skipNote(pg)}`, () => {
  const db = useTestDatabase();
  let cluster: TestCluster;
  let other: postgres.Sql;

  beforeAll(async () => {
    // A long --metadata-timeout: the row write waits on the lock below instead of being cancelled.
    cluster = await startCluster({ config: { metadata: db.url, fragmentSize: FRAGMENT, repairAfterSec: 3600, metadataTimeoutSec: 60 } });
    other = postgres(db.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await cluster?.close();
    await other?.end({ timeout: 2 });
  });

  it("counts the fragments of a datanode just seen DOWN while its row's write is still held up", async () => {
    await uploadImage(cluster, 'a.png', bytesOf(6 * FRAGMENT, 7));
    const victim = 0;
    const onVictim = (await fragmentsOf(cluster, 'a.png')).filter((f) => f.holders.includes(victim)).length;
    expect(onVictim).toBeGreaterThan(0);

    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = other.begin(async (tx) => {
      await tx`SELECT 1 FROM datanodes WHERE id = ${datanodeIds(cluster)[victim]} FOR UPDATE`;
      locked();
      await new Promise<void>((r) => (release = r));
    });
    await isLocked;
    let answer: Promise<number>;
    try {
      await stopDatanode(cluster, victim);
      await waitForStatus(cluster, victim, 'DOWN'); // in the registry; its row still says UP
      answer = cluster.app.cluster.underReplicatedFragments();
      // Without the wait the count comes back now, from the row that still says UP; with it, only
      // once the write goes through. Released after the answer or a second, whichever is first.
      await Promise.race([answer, new Promise((r) => setTimeout(r, 1000))]);
    } finally {
      release();
      await holder;
    }
    expect(await answer).toBe(onVictim);
  });
});
