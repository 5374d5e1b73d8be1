// Re-replication with real datanode processes (kill -9, restart on the same data dir and port):
// a datanode that returns while its fragments are being copied off keeps its files, copying
// stops within seconds, the extra copies are trimmed and no fragment has fewer than R replicas
// at any sampled moment; and a busy repairer takes the fragments down to one live copy first,
// whatever datanode they were lost with.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { makeConfig, type CoordinatorConfig } from '../src/config.ts';
import type { ClusterEvent } from '../src/events.ts';
import { startCoordinator, type RunningCoordinator } from '../src/start-coordinator.ts';
import { TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses, type DatanodeProcess } from './support/datanode-process.ts';
import { createGraphQLClient } from './support/graphql.ts';
import { readAdminToken, rememberToken } from './support/tokens.ts';
import { datanodeIds, fragmentFileList, settleDeletions } from './support/disk.ts';
import { withInternals } from './support/coordinator-view.ts';
import { until } from './support/poll.ts';
import { auditDisks, watchEvents } from './support/faults.ts';
import { bytesOf, download, sha256, uploadImage } from './support/images.ts';

let dir: string | undefined;
let coordinator: RunningCoordinator | undefined;

afterEach(async () => {
  await coordinator?.stop();
  coordinator = undefined;
  await stopAllDatanodeProcesses();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** N datanode processes and an in-process coordinator (its index read directly), in the shape the support helpers take. */
async function startProcessCluster(datanodes: number, config: Partial<CoordinatorConfig>) {
  dir = await mkdtemp(join(tmpdir(), 'tessera-repair-return-'));
  const base = dir;
  const processes: DatanodeProcess[] = await Promise.all(
    Array.from({ length: datanodes }, (_, i) => startDatanodeProcess({ dataDir: join(base, `datanode-${i}`), secret: TEST_SECRET })),
  );
  // Real datanodes measure the real machine: a busy box must not make them DEGRADED.
  const thresholds = { cpuPercent: 101, memoryPercent: 101, diskPercent: 101 };
  coordinator = await startCoordinator(
    makeConfig({
      dataDir: join(base, 'coordinator'),
      port: 0,
      secret: TEST_SECRET,
      healthIntervalMs: 200,
      thresholds,
      datanodes: processes.map((p) => p.url),
      ...config,
    }),
    pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
  );
  rememberToken(coordinator.url, readAdminToken(join(base, 'coordinator')));
  const cluster = {
    nodes: processes.map((p, index) => ({ index, dataDir: join(base, `datanode-${index}`), url: p.url })),
    get app() {
      return withInternals(coordinator!.app);
    },
    get url() {
      return coordinator!.url;
    },
    gql: createGraphQLClient(() => coordinator!.url),
  } as unknown as TestCluster;
  const ids = datanodeIds(cluster);
  return {
    cluster,
    ids,
    async kill(i: number) {
      processes[i].kill('SIGKILL');
      await processes[i].exited;
    },
    async restart(i: number) {
      processes[i] = await startDatanodeProcess({
        dataDir: join(base, `datanode-${i}`),
        secret: TEST_SECRET,
        port: Number(new URL(processes[i].url).port),
      });
    },
    status: (i: number) => cluster.app.registry.get(ids[i])?.status ?? null,
  };
}

async function store(cluster: TestCluster, images: number, fragments: number, fragmentSize: number) {
  const stored = new Map<string, Buffer>();
  for (let i = 0; i < images; i++) {
    const bytes = bytesOf(fragments * fragmentSize - 3 * i, 700 + i);
    await uploadImage(cluster, `r-${i}.bin`, bytes);
    stored.set(`r-${i}.bin`, bytes);
  }
  return stored;
}

/** Fragment id → the datanode ids the index lists for it. */
async function holdersByFragment(cluster: TestCluster): Promise<Map<string, string[]>> {
  const rows = (await cluster.app.indexSql('SELECT fragment_id AS f, datanode_id AS d FROM replicas')) as { f: string; d: string }[];
  const out = new Map<string, string[]>();
  for (const { f, d } of rows) out.set(f, [...(out.get(f) ?? []), d]);
  return out;
}

const reReplications = (events: readonly ClusterEvent[]) =>
  events.filter(
    (e): e is Extract<ClusterEvent, { kind: 'ReplicaRepaired' }> => e.kind === 'ReplicaRepaired' && e.reason === 're-replication',
  );

describe('a datanode that returns while it is being re-replicated', () => {
  it('keeps its files; copying stops within seconds; the extra copies are trimmed; no fragment ever has fewer than 2 replicas', async () => {
    const FRAGMENT = 64 * 1024;
    // 2 fragments a second: a long repair, still copying when the datanode is back.
    const { cluster, ids, kill, restart, status } = await startProcessCluster(3, {
      fragmentSize: FRAGMENT,
      repairAfterSec: 1,
      repairBytesPerSec: 128 * 1024,
    });
    const stored = await store(cluster, 6, 20, FRAGMENT);
    const victim = 1;
    const victimId = ids[victim];
    const placed = await holdersByFragment(cluster);
    const onVictim = [...placed].filter(([, h]) => h.includes(victimId)).map(([f]) => f);
    expect(onVictim.length).toBeGreaterThan(30);
    const victimFiles = async () =>
      (await fragmentFileList(cluster))
        .filter((f) => f.node === victim)
        .map((f) => f.id)
        .sort();
    const filesBefore = await victimFiles();
    expect(filesBefore).toEqual([...onVictim].sort());

    // Sampled all along: replicas in the index per fragment, and live ones once the victim is back.
    let minRecorded = Number.POSITIVE_INFINITY;
    let minLiveAfterReturn = Number.POSITIVE_INFINITY;
    let victimBack = false;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const back = victimBack;
        for (const holders of (await holdersByFragment(cluster)).values()) {
          minRecorded = Math.min(minRecorded, holders.length);
          if (back) minLiveAfterReturn = Math.min(minLiveAfterReturn, holders.filter((d) => cluster.app.registry.isLive(d)).length);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const events = watchEvents(cluster.app);
    try {
      await returnMidRepair();
    } finally {
      sampling = false;
      await sampler;
      events.close();
    }

    /** Kill, repair under way, back again: until the excess is trimmed and deleted. */
    async function returnMidRepair() {
      await kill(victim);
      await until(() => reReplications(events.received).length >= 4, 're-replication under way', 30_000);
      await restart(victim);
      await until(() => status(victim) === 'UP', 'the victim UP again', 15_000);
      victimBack = true;
      const copiesAtReturn = reReplications(events.received).length;
      expect(copiesAtReturn).toBeLessThan(onVictim.length); // still copying when it came back

      // At most the copies in flight finish (2 at a time); a repair pass begun after its return
      // copies nothing more, nor does the next one. (The macrotask turn lets the events of a
      // finished pass reach the subscription first.)
      const passEnded = async () => {
        await cluster.app.repairer.kick();
        await new Promise((r) => setImmediate(r));
        return reReplications(events.received).length;
      };
      const copiesAfterPass = await passEnded();
      expect(copiesAfterPass - copiesAtReturn).toBeLessThanOrEqual(4);
      expect(await passEnded()).toBe(copiesAfterPass);

      // The extra copies go; the victim's own stay (placement ranks it as at upload: equal disks).
      await until(
        async () => [...(await holdersByFragment(cluster)).values()].every((h) => h.length === 2),
        'every fragment back to 2 replicas',
        20_000,
      );
      await settleDeletions(cluster, 15_000);
    }
    expect(minRecorded).toBe(2);
    expect(minLiveAfterReturn).toBeGreaterThanOrEqual(2);
    expect(await victimFiles()).toEqual(filesBefore);
    const after = await holdersByFragment(cluster);
    for (const [f, holders] of placed) expect([...after.get(f)!].sort(), f).toEqual([...holders].sort());
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
    for (const [name, bytes] of stored) expect(sha256((await download(cluster, name)).body), name).toBe(sha256(bytes));
  }, 150_000);
});

describe('repair priority', () => {
  it('copies the fragments down to one live copy first, and does not keep a newly lost datanode waiting behind the first', async () => {
    const FRAGMENT = 16 * 1024;
    // RF 3 over 5 datanodes; 4 single copies a second.
    const { cluster, ids, kill, status } = await startProcessCluster(5, {
      fragmentSize: FRAGMENT,
      replicationFactor: 3,
      repairAfterSec: 1,
      repairBytesPerSec: 64 * 1024,
    });
    const stored = await store(cluster, 8, 20, FRAGMENT);
    const [first, second] = [0, 1];
    const placed = await holdersByFragment(cluster);
    const onFirst = new Set([...placed].filter(([, h]) => h.includes(ids[first]) && !h.includes(ids[second])).map(([f]) => f));
    const onSecond = new Set([...placed].filter(([, h]) => h.includes(ids[second]) && !h.includes(ids[first])).map(([f]) => f));
    expect(onFirst.size).toBeGreaterThan(20);
    expect(onSecond.size).toBeGreaterThan(20);
    const events = watchEvents(cluster.app);

    await kill(first);
    await until(() => reReplications(events.received).length >= 3, 're-replication of the first datanode under way', 30_000);
    await kill(second);
    await until(() => status(second) === 'DOWN', 'the second datanode DOWN', 15_000);
    // The moment the second datanode counts as lost (DOWN past --repair-after): which fragments
    // are down to one live copy then.
    const lostAt = cluster.app.registry.get(ids[second])!.statusSince + 1000;
    await until(() => Date.now() >= lostAt, 'the second datanode lost', 5000);
    const gone = new Set([ids[first], ids[second]]);
    const liveCopies = (holders: Map<string, string[]>, f: string) => (holders.get(f) ?? []).filter((d) => !gone.has(d)).length;
    const atLoss = await holdersByFragment(cluster);
    const single = new Set([...atLoss.keys()].filter((f) => liveCopies(atLoss, f) === 1));
    expect(single.size).toBeGreaterThan(5);
    // The first datanode's fragments still short then: they tie with the second's (two live
    // copies each), so the second's must be copied among them, not after them all.
    const firstPending = [...onFirst].filter((f) => liveCopies(atLoss, f) < 3);
    expect(firstPending.length).toBeGreaterThan(5);

    /** Fragments in the order their first copy was recorded after the second loss. */
    const copiedAfterLoss = () => {
      const order: string[] = [];
      for (const e of reReplications(events.received))
        if (e.at.getTime() >= lostAt && !order.includes(e.fragmentId)) order.push(e.fragmentId);
      return order;
    };
    await until(
      async () => {
        const now = await holdersByFragment(cluster);
        return [...single].every((f) => liveCopies(now, f) >= 3);
      },
      'every single-copy fragment back to 3 copies',
      90_000,
    );
    // Watch until every fragment of the first datanode short at the loss has been copied (each
    // such copy is recorded after lostAt): whatever the machine's speed, the whole stretch in
    // which the second datanode's fragments could have been kept waiting is then in the order.
    await until(
      () => {
        const order = copiedAfterLoss();
        return firstPending.every((f) => order.includes(f));
      },
      'every fragment of the first datanode short at the second loss copied',
      90_000,
    );
    events.close();

    // The copies in flight at the loss (2 at a time) may finish first, and on a loaded machine
    // the batch after them, started before the repairer's next look at the registry.
    const order = copiedAfterLoss();
    const lastSingle = Math.max(...[...single].map((f) => order.indexOf(f)));
    const others = order.slice(0, lastSingle + 1).filter((f, i) => i >= 4 && !single.has(f));
    // The queue is re-read from the registry between batches; on a loaded machine one
    // two-copy fragment picked just before the loss was seen may slip ahead (seen in CI runs).
    expect(
      others.length,
      `fragments with two live copies repaired before the last single-copy one: ${others.join(', ')}`,
    ).toBeLessThanOrEqual(1);
    expect(single.size - others.length).toBeGreaterThan(4);
    // The second datanode's fragments are not left until the first one's are all done.
    const firstOfSecond = order.findIndex((f) => onSecond.has(f));
    const lastOfFirst = order.findLastIndex((f) => onFirst.has(f));
    expect(firstOfSecond, "a fragment of the second datanode copied before the first datanode's were all done").toBeGreaterThanOrEqual(0);
    expect(firstOfSecond, 'a fragment of the second datanode was copied while the first still had fragments to copy').toBeLessThan(
      lastOfFirst,
    );
    for (const [name, bytes] of stored) expect(sha256((await download(cluster, name)).body), name).toBe(sha256(bytes));
  }, 180_000);
});
