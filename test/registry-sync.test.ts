// Two coordinators' datanode registries kept in step over a real PostgreSQL event channel (two
// event buses in one process) and one shared set of datanode rows: a datanode registered through
// either is known to both, the leader's status changes reach the follower, a removal goes
// everywhere, and the leader samples a datanode registered through the follower at once.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus } from '../src/events.ts';
import { postgresNotifyTransport } from '../src/events-postgres.ts';
import { createRegistry, type Registry } from '../src/cluster/registry.ts';
import { createRegistrySync, type RegistrySync } from '../src/cluster/registry-sync.ts';
import { DEFAULTS } from '../src/config.ts';
import { openDatabase, type Db } from '../src/metadata/database.ts';
import { sqliteMetadataOn } from '../src/metadata/store.ts';
import { until } from './support/poll.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const server = await postgresAvailable();
const quiet = pino({ level: 'silent' });
const calm = { cpuPercent: 5, memoryPercent: 30, diskPercent: 40, diskFreeBytes: 5e9, fragmentCount: 3, storedBytes: 300 };

describe.skipIf(!server.adminUrl)(`datanode registries of two coordinators${skipNote(server)}`, () => {
  const pg = useTestDatabase();
  let dir: string;
  let db: Db;
  const transports: ReturnType<typeof postgresNotifyTransport>[] = [];
  const side: { events: EventBus; registry: Registry; sync: RegistrySync; sampled: string[] }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-registry-sync-'));
    db = openDatabase(join(dir, 'index.sqlite'));
    for (const [origin, leader] of [
      ['leader', true],
      ['follower', false],
    ] as const) {
      const transport = postgresNotifyTransport(pg.url);
      transports.push(transport);
      const events = createEventBus({ relay: { transport, origin } });
      const rows = sqliteMetadataOn(db).datanodes;
      const registry = createRegistry({
        rows,
        initial: await rows.all(),
        downAfterFailures: 3,
        thresholds: DEFAULTS.thresholds,
        onChange: (id) => events.tellOthers({ kind: 'datanodeChanged', id }),
      });
      const sampled: string[] = [];
      const sync = createRegistrySync({
        registry,
        readRows: () => rows.all(),
        events,
        isLeader: () => leader,
        log: quiet,
        onStatusChange: () => {},
        onNewDatanode: (id) => void sampled.push(id),
      });
      await events.start();
      side.push({ events, registry, sync, sampled });
    }
  });
  afterAll(async () => {
    for (const s of side) {
      await s.sync.stop();
      await s.events.close();
    }
    await Promise.all(transports.map((t) => t.close()));
    db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("knows a datanode registered through the other, takes the leader's statuses, and forgets a removed one", async () => {
    const [leader, follower] = side;
    const { datanode } = await leader.registry.register('http://127.0.0.1:7001');
    await until(() => follower.registry.get(datanode.id) !== undefined, 'the follower to learn of it');

    // The leader's monitor: a sample, relayed with its status change.
    const change = leader.registry.recordSample(datanode.id, calm)!;
    leader.events.sample({
      at: new Date(),
      datanode: leader.registry.get(datanode.id)!,
      status: 'UP',
      cpuPercent: 5,
      memoryPercent: 30,
      diskPercent: 40,
    });
    leader.events.emit({ kind: 'DatanodeStatusChanged', message: 'up', datanode: change.datanode, previous: null, status: 'UP' });
    await until(() => follower.registry.get(datanode.id)?.status === 'UP', 'the follower to see it UP');
    expect(follower.registry.live().map((n) => n.id)).toEqual([datanode.id]);

    // Registered through the follower: the leader learns of it and samples it at once.
    const second = (await follower.registry.register('http://127.0.0.1:7002')).datanode;
    await until(() => leader.sampled.includes(second.id), 'the leader to sample the new datanode');

    leader.registry.setDraining(datanode.id, true);
    leader.registry.remove(datanode.id);
    await until(() => follower.registry.get(datanode.id) === undefined, 'the follower to forget it');
    expect(follower.registry.all().map((n) => n.id)).toEqual([second.id]);
  });

  it('re-reads the rows when asked (the safety net), whatever it missed', async () => {
    const [, follower] = side;
    await sqliteMetadataOn(db).datanodes.insert('dn-missed', 'http://127.0.0.1:7003', Date.now());
    await follower.sync.reload('test');
    expect(follower.registry.get('dn-missed')?.url).toBe('http://127.0.0.1:7003');
  });
});
