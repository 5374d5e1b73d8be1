// The contract's health rules on a fake clock and scripted samples: DOWN after 3 failed samples
// in a row, DEGRADED at CPU ≥ 80 / memory ≥ 90 / disk ≥ 95 (configurable), one status event per
// change (the first with previous null), one health message per sample, stored for a restart;
// and the hysteresis between UP and DEGRADED (3 samples to confirm, margins to come back).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DatanodeHealthReport } from '../src/shared/datanode-api.ts';
import { DEFAULTS, type HealthThresholds } from '../src/config.ts';
import { DEFAULT_HYSTERESIS, decideStatus, isLive, settleStatus, type Streak } from '../src/cluster/health-rules.ts';
import { createRegistry } from '../src/cluster/registry.ts';
import { createMonitor } from '../src/cluster/monitor.ts';
import { createScheduler } from '../src/shared/scheduler.ts';
import { placeReplicas } from '../src/cluster/placement.ts';
import type { DatanodeClient } from '../src/cluster/datanode-client.ts';
import type { ClusterEvent, EventBus, HealthSample } from '../src/events.ts';
import { openDatabase, type Db } from '../src/metadata/database.ts';
import { sqliteMetadataOn } from '../src/metadata/store.ts';

const thresholds: HealthThresholds = { ...DEFAULTS.thresholds };
const calm: DatanodeHealthReport = {
  cpuPercent: 5,
  memoryPercent: 30,
  diskPercent: 40,
  diskFreeBytes: 5e9,
  fragmentCount: 3,
  storedBytes: 300,
};
const rules = { downAfterFailures: 3, thresholds };

describe('decideStatus', () => {
  it('is UP on a calm sample, whatever came before', () => {
    for (const previous of [null, 'UP', 'DEGRADED', 'DOWN'] as const) {
      expect(decideStatus({ ...rules, previous, consecutiveFailures: 0, sample: calm })).toBe('UP');
    }
  });

  it('is DEGRADED at exactly CPU 80, memory 90 or disk 95, UP just below', () => {
    expect(decideStatus({ ...rules, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, cpuPercent: 80 } })).toBe('DEGRADED');
    expect(decideStatus({ ...rules, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, memoryPercent: 90 } })).toBe('DEGRADED');
    expect(decideStatus({ ...rules, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, diskPercent: 95 } })).toBe('DEGRADED');
    const justBelow = { ...calm, cpuPercent: 79.99, memoryPercent: 89.99, diskPercent: 94.99 };
    expect(decideStatus({ ...rules, previous: 'DEGRADED', consecutiveFailures: 0, sample: justBelow })).toBe('UP');
  });

  it('takes configured thresholds', () => {
    const strict = { cpuPercent: 50, memoryPercent: 60, diskPercent: 70 };
    expect(
      decideStatus({ ...rules, thresholds: strict, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, cpuPercent: 50 } }),
    ).toBe('DEGRADED');
    expect(
      decideStatus({ ...rules, thresholds: strict, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, diskPercent: 69 } }),
    ).toBe('UP');
    const lax = { cpuPercent: 100, memoryPercent: 100, diskPercent: 100 };
    expect(
      decideStatus({
        ...rules,
        thresholds: lax,
        previous: 'UP',
        consecutiveFailures: 0,
        sample: { ...calm, cpuPercent: 99, memoryPercent: 99, diskPercent: 99 },
      }),
    ).toBe('UP');
  });

  it('keeps the status through 2 failed samples and is DOWN at the 3rd', () => {
    for (const previous of [null, 'UP', 'DEGRADED'] as const) {
      expect(decideStatus({ ...rules, previous, consecutiveFailures: 1 })).toBe(previous);
      expect(decideStatus({ ...rules, previous, consecutiveFailures: 2 })).toBe(previous);
      expect(decideStatus({ ...rules, previous, consecutiveFailures: 3 })).toBe('DOWN');
      expect(decideStatus({ ...rules, previous, consecutiveFailures: 4 })).toBe('DOWN');
    }
    expect(decideStatus({ ...rules, downAfterFailures: 1, previous: 'UP', consecutiveFailures: 1 })).toBe('DOWN');
  });

  it('counts UP and DEGRADED as live', () => {
    expect([null, 'UP', 'DEGRADED', 'DOWN'].map((s) => isLive(s as never))).toEqual([false, true, true, false]);
  });
});

describe('registry on a fake clock', () => {
  let dir: string;
  let db: Db;
  let clock: number;
  const now = () => clock;
  const registry = async (overrides: Partial<Parameters<typeof createRegistry>[0]> = {}) => {
    const rows = sqliteMetadataOn(db).datanodes;
    return createRegistry({ rows, initial: await rows.all(), downAfterFailures: 3, thresholds, now, ...overrides });
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-health-rules-'));
    db = openDatabase(join(dir, 'index.sqlite'));
    clock = Date.parse('2026-01-01T00:00:00.000Z');
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the first status after registration with previous null, then only changes', async () => {
    const reg = await registry();
    const { datanode, created } = await reg.register('http://127.0.0.1:7001');
    expect(created).toBe(true);
    expect(datanode.status).toBeNull();
    expect(reg.isLive(datanode.id)).toBe(false);
    expect(await reg.register('http://127.0.0.1:7001')).toMatchObject({ datanode: { id: datanode.id }, created: false });

    clock += 1000;
    expect(reg.recordSample(datanode.id, calm)).toMatchObject({
      previous: null,
      status: 'UP',
      datanode: { id: datanode.id, status: 'UP' },
    });
    expect(reg.get(datanode.id)).toMatchObject({
      status: 'UP',
      statusSince: clock,
      lastSeenAt: clock,
      cpuPercent: 5,
      diskFreeBytes: 5e9,
      fragmentCount: 3,
    });
    clock += 1000;
    expect(reg.recordSample(datanode.id, calm)).toBeUndefined();
    expect(reg.get(datanode.id)!.lastSeenAt).toBe(clock);
  });

  it('stays UP through 2 failed samples, is DOWN at the 3rd, UP again after one success', async () => {
    const reg = await registry();
    const { id } = (await reg.register('http://127.0.0.1:7002')).datanode;
    reg.recordSample(id, calm);
    const seenAt = clock;

    clock += 2000;
    expect(reg.recordSample(id, undefined)).toBeUndefined();
    clock += 2000;
    expect(reg.recordSample(id, undefined)).toBeUndefined();
    expect(reg.get(id)).toMatchObject({ status: 'UP', lastSeenAt: seenAt });
    expect(reg.isLive(id)).toBe(true);

    clock += 2000;
    expect(reg.recordSample(id, undefined)).toMatchObject({ previous: 'UP', status: 'DOWN' });
    // The last answered sample stays; the status is DOWN since this sample.
    expect(reg.get(id)).toMatchObject({ status: 'DOWN', statusSince: clock, lastSeenAt: seenAt, cpuPercent: 5 });
    expect(reg.isLive(id)).toBe(false);
    expect(reg.live()).toEqual([]);
    clock += 2000;
    expect(reg.recordSample(id, undefined)).toBeUndefined(); // still DOWN: no second event

    clock += 2000;
    expect(reg.recordSample(id, calm)).toMatchObject({ previous: 'DOWN', status: 'UP' });
    // The success reset the streak: 2 new failures are not enough again.
    reg.recordSample(id, undefined);
    reg.recordSample(id, undefined);
    expect(reg.get(id)!.status).toBe('UP');
  });

  it('a success between failures resets the streak', async () => {
    const reg = await registry();
    const { id } = (await reg.register('http://127.0.0.1:7003')).datanode;
    const script = [calm, undefined, undefined, calm, undefined, undefined, calm];
    const changes = script.map((s) => reg.recordSample(id, s)).filter(Boolean);
    expect(changes).toHaveLength(1);
    expect(reg.get(id)!.status).toBe('UP');
  });

  // Between UP and DEGRADED a change waits for 3 samples in a row (the hysteresis below); the
  // first status, DOWN and the way back from DOWN are at once.
  it('goes DOWN, DEGRADED, UP and DEGRADED as samples say, one change each', async () => {
    const reg = await registry();
    const { id } = (await reg.register('http://127.0.0.1:7004')).datanode;
    const script: (DatanodeHealthReport | undefined)[] = [
      { ...calm, memoryPercent: 90 }, // first status: DEGRADED
      { ...calm, memoryPercent: 95 },
      undefined,
      undefined,
      undefined, // DOWN
      { ...calm, diskPercent: 95 }, // back, but DEGRADED
      calm,
      calm,
      calm, // UP, confirmed
      { ...calm, cpuPercent: 80 },
      { ...calm, cpuPercent: 80 },
      { ...calm, cpuPercent: 80 }, // DEGRADED, confirmed
    ];
    const changes = script
      .map((s) => reg.recordSample(id, s))
      .filter(Boolean)
      .map((c) => [c!.previous, c!.status]);
    expect(changes).toEqual([
      [null, 'DEGRADED'],
      ['DEGRADED', 'DOWN'],
      ['DOWN', 'DEGRADED'],
      ['DEGRADED', 'UP'],
      ['UP', 'DEGRADED'],
    ]);
  });

  it('a datanode that never answers has DOWN as its first status (previous null) at the 3rd failure', async () => {
    const reg = await registry();
    const { id } = (await reg.register('http://127.0.0.1:7005')).datanode;
    expect(reg.recordSample(id, undefined)).toBeUndefined();
    expect(reg.recordSample(id, undefined)).toBeUndefined();
    expect(reg.get(id)!.status).toBeNull();
    expect(reg.recordSample(id, undefined)).toMatchObject({ previous: null, status: 'DOWN' });
    expect(reg.get(id)!.lastSeenAt).toBeNull();
  });

  it('takes downAfterFailures and thresholds from its configuration', async () => {
    const reg = await registry({ downAfterFailures: 1, thresholds: { cpuPercent: 50, memoryPercent: 100, diskPercent: 100 } });
    const { id } = (await reg.register('http://127.0.0.1:7006')).datanode;
    expect(reg.recordSample(id, { ...calm, cpuPercent: 50 })).toMatchObject({ status: 'DEGRADED' });
    expect(reg.recordSample(id, undefined)).toMatchObject({ previous: 'DEGRADED', status: 'DOWN' });
  });

  it('a new registry on the same index (a restart) shows the last stored sample and status', async () => {
    const first = await registry();
    const { id } = (await first.register('http://127.0.0.1:7007')).datanode;
    first.recordSample(id, {
      ...calm,
      cpuPercent: 12.5,
      memoryPercent: 33.25,
      diskPercent: 44.75,
      diskFreeBytes: 123456789,
      fragmentCount: 7,
      storedBytes: 7000,
    });
    const seenAt = clock;
    clock += 2000;
    first.recordSample(id, undefined);
    first.recordSample(id, undefined);
    first.recordSample(id, undefined); // DOWN, sample kept
    await first.persisted(); // the row writes are queued: stored before the restart reads them

    clock += 60_000;
    const restarted = await registry();
    expect(restarted.get(id)).toMatchObject({
      url: 'http://127.0.0.1:7007',
      status: 'DOWN',
      lastSeenAt: seenAt,
      cpuPercent: 12.5,
      memoryPercent: 33.25,
      diskPercent: 44.75,
      diskFreeBytes: 123456789,
      fragmentCount: 7,
      storedBytes: 7000,
    });
    // Its next answer brings it back with one change.
    expect(restarted.recordSample(id, calm)).toMatchObject({ previous: 'DOWN', status: 'UP' });
  });
});

describe('hysteresis between UP and DEGRADED', () => {
  /** The statuses after each sample of a script, starting from `start`, with the default hysteresis. */
  function run(start: 'UP' | 'DEGRADED', cpus: number[]) {
    let previous: 'UP' | 'DEGRADED' | 'DOWN' | null = start;
    let streak: Streak = { toward: null, count: 0 };
    return cpus.map((cpuPercent) => {
      ({ status: previous, streak } = settleStatus({
        ...rules,
        previous,
        consecutiveFailures: 0,
        sample: { ...calm, cpuPercent },
        streak,
        hysteresis: DEFAULT_HYSTERESIS,
      }));
      return previous;
    });
  }

  it('goes DEGRADED only after 3 hot samples in a row', () => {
    expect(run('UP', [85, 85, 85, 85])).toEqual(['UP', 'UP', 'DEGRADED', 'DEGRADED']);
    expect(run('UP', [85, 50, 85, 85, 50, 85, 85, 85])).toEqual(['UP', 'UP', 'UP', 'UP', 'UP', 'UP', 'UP', 'DEGRADED']);
  });

  it('comes back UP only after 3 samples in a row below threshold minus margin (CPU < 70)', () => {
    expect(run('DEGRADED', [75, 75, 75, 75, 75])).toEqual(Array(5).fill('DEGRADED'));
    expect(run('DEGRADED', [69, 69, 75, 69, 69, 69])).toEqual(['DEGRADED', 'DEGRADED', 'DEGRADED', 'DEGRADED', 'DEGRADED', 'UP']);
  });

  it('a CPU wandering between 75 and 90 % for a minute of 2 s samples changes the status at most once', () => {
    // Deterministic pseudo-random walk inside the band, many starting points.
    for (let seed = 1; seed <= 50; seed++) {
      let x = seed;
      const cpus = Array.from({ length: 30 }, () => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return 75 + (x % 1500) / 100;
      });
      for (const start of ['UP', 'DEGRADED'] as const) {
        const statuses = [start, ...run(start, cpus)];
        const changes = statuses.filter((s, i) => i > 0 && s !== statuses[i - 1]).length;
        expect(changes, `seed ${seed} from ${start}`).toBeLessThanOrEqual(1);
      }
    }
  });

  it('the bare rule (no hysteresis) flips on every crossing: what the hysteresis prevents', () => {
    const bare = [85, 76, 85, 76].map((cpuPercent) =>
      decideStatus({ ...rules, previous: 'UP', consecutiveFailures: 0, sample: { ...calm, cpuPercent } }),
    );
    expect(bare).toEqual(['DEGRADED', 'UP', 'DEGRADED', 'UP']);
  });

  it('does not delay DOWN, the first status, or the way back from DOWN', () => {
    const at = (previous: 'UP' | 'DEGRADED' | 'DOWN' | null, sample: DatanodeHealthReport | undefined, failures = 0) =>
      settleStatus({
        ...rules,
        previous,
        consecutiveFailures: failures,
        sample,
        streak: { toward: null, count: 0 },
        hysteresis: DEFAULT_HYSTERESIS,
      }).status;
    expect(at(null, { ...calm, cpuPercent: 90 })).toBe('DEGRADED');
    expect(at(null, calm)).toBe('UP');
    expect(at('DOWN', calm)).toBe('UP');
    expect(at('DOWN', { ...calm, diskPercent: 99 })).toBe('DEGRADED');
    expect(at('DEGRADED', undefined, 3)).toBe('DOWN');
  });
});

describe('monitor', () => {
  let dir: string;
  let db: Db;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-monitor-'));
    db = openDatabase(join(dir, 'index.sqlite'));
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes one health message per sample and one status event per change', async () => {
    const rows = sqliteMetadataOn(db).datanodes;
    const registry = createRegistry({ rows, initial: await rows.all(), downAfterFailures: 3, thresholds });
    const a = (await registry.register('http://a.test')).datanode.id;
    const b = (await registry.register('http://b.test')).datanode.id;
    const c = (await registry.register('http://c.test')).datanode.id;
    // Scripted answers per round: a answers, then fails 3 times, then answers hot; b always
    // answers; c never does.
    const scriptA: (DatanodeHealthReport | undefined)[] = [calm, undefined, undefined, undefined, { ...calm, cpuPercent: 85 }];
    let round = 0;
    const client = {
      async health(url: string) {
        if (url === 'http://b.test') return calm;
        if (url === 'http://c.test') throw new Error('connect ECONNREFUSED');
        const answer = scriptA[round];
        if (!answer) throw new Error('connect ECONNREFUSED');
        return answer;
      },
    } as unknown as DatanodeClient;
    const samples: HealthSample[] = [];
    const events: ClusterEvent[] = [];
    const bus = {
      sample: (s: HealthSample) => samples.push(s),
      emit: (e: Omit<ClusterEvent, 'at'>) => events.push({ ...e, at: new Date() } as ClusterEvent),
    } as unknown as EventBus;
    const monitor = createMonitor({
      registry,
      client,
      events: bus,
      scheduler: createScheduler(),
      intervalMs: 1000,
      log: pino({ level: 'silent' }),
      thresholds,
    });

    for (round = 0; round < scriptA.length; round++) await monitor.kick();

    expect(samples).toHaveLength(3 * scriptA.length);
    const ofA = samples.filter((s) => s.datanode.id === a);
    expect(ofA.map((s) => s.status)).toEqual(['UP', 'UP', 'UP', 'DOWN', 'DEGRADED']);
    expect(ofA.map((s) => s.cpuPercent)).toEqual([5, null, null, null, 85]);
    expect(samples.filter((s) => s.datanode.id === b).every((s) => s.status === 'UP' && s.cpuPercent === 5)).toBe(true);
    // A failed sample is a message too; before any status a datanode shows as DOWN (not live).
    expect(samples.filter((s) => s.datanode.id === c).map((s) => [s.status, s.cpuPercent])).toEqual(
      Array(scriptA.length).fill(['DOWN', null]),
    );

    const changes = events.map((e) => e.kind === 'DatanodeStatusChanged' && [e.datanode.id, e.previous, e.status]);
    expect(changes).toEqual([
      [a, null, 'UP'],
      [b, null, 'UP'],
      [c, null, 'DOWN'], // its 3rd failure is round 2
      [a, 'UP', 'DOWN'], // a's is round 3
      [a, 'DOWN', 'DEGRADED'],
    ]);
    expect(events.every((e) => e.message.length > 0)).toBe(true);
    // DEGRADED says which resource is over its threshold.
    expect(events.at(-1)!.message).toContain('cpu 85%');
  });
});

describe('placement by status', () => {
  const node = (id: string, status: 'UP' | 'DEGRADED' | 'DOWN' | null) => ({ id, status, diskFreeBytes: 1e9, draining: false });

  it('never picks DOWN or not yet sampled datanodes', () => {
    const nodes = [node('down', 'DOWN'), node('new', null), node('up1', 'UP'), node('up2', 'UP')];
    for (let i = 0; i < 50; i++) expect(placeReplicas(`f${i}`, nodes, 4).sort()).toEqual(['up1', 'up2']);
  });

  it('gives DEGRADED datanodes no replica while enough UP ones exist, and uses them when too few', () => {
    const nodes = [node('hot', 'DEGRADED'), node('up1', 'UP'), node('up2', 'UP'), node('up3', 'UP')];
    for (let i = 0; i < 50; i++) expect(placeReplicas(`f${i}`, nodes, 2)).not.toContain('hot');
    const fewUp = [node('hot', 'DEGRADED'), node('up1', 'UP'), node('down', 'DOWN')];
    expect(placeReplicas('f', fewUp, 2)).toEqual(['up1', 'hot']);
  });
});
