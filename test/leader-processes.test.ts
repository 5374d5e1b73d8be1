// The lease, the gate and fencing across real processes on a real PostgreSQL server and a real
// datanode (test/support/lease-holder.ts: a background worker built from the coordinator's own
// modules): one holder works at a time; kill -9 of it hands the work to another within the
// documented bound; a holder stopped with SIGSTOP in the middle of a pass and resumed after the
// takeover has the writes it then makes refused, by PostgreSQL and by the datanode, and nothing it
// wrote lands after its successor's first write. Skipped, with the reason, without PostgreSQL.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { takeoverBoundMs } from '../src/cluster/leader-lease.ts';
import { FENCED_IDLE_LIMIT_MS } from '../src/shared/fence.ts';
import { ChildGroup, listeningLine, startChild, type Child } from '../src/launcher/child-process.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses, type DatanodeProcess } from './support/datanode-process.ts';
import { untilValue } from './support/poll.ts';
import { netnsUnavailable } from './support/netns.ts';
import { createSwitch, startRelay, type Relay, type Switch } from './support/hosts.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const pg = await postgresAvailable();
const TTL_MS = 2000;
const SECRET = 'leader-processes-secret';
const CLUSTER = randomUUID();

/** test/support/lease-holder.ts and its flags: holding the lease on the database at `url` as `name`, passes working `workMs`. */
const holderArgs = (url: string, name: string, workMs: number) => [
  'test/support/lease-holder.ts',
  ...['--url', url, '--holder', name, '--ttl-ms', String(TTL_MS), '--work-ms', String(workMs)],
];

interface Event {
  event: string;
  holder: string;
  token?: string;
  by?: string;
  to?: string;
}

describe.skipIf(!pg.adminUrl)(`background work on one process of several, fenced${skipNote(pg)}`, () => {
  const db = useTestDatabase();
  const group = new ChildGroup();
  let sql: postgres.Sql;
  let dir: string;
  let datanode: DatanodeProcess;
  const events = new Map<string, Event[]>();

  async function holder(name: string): Promise<Child> {
    events.set(name, []);
    return startChild({
      name: `lease holder ${name}`,
      args: [
        '--import',
        'tsx',
        ...holderArgs(db.url, name, 400),
        ...['--datanode', datanode.url, '--secret', SECRET, '--cluster', CLUSTER],
      ],
      group,
      timeoutMs: 20_000,
      ready: listeningLine,
      onLine(line, stream) {
        if (stream !== 'stdout') return;
        try {
          events.get(name)!.push(JSON.parse(line) as Event);
        } catch {
          /* not an event */
        }
      },
    });
  }
  const of = (name: string, event: string) => events.get(name)!.filter((e) => e.event === event);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-lease-proc-'));
    datanode = await startDatanodeProcess({ dataDir: join(dir, 'dn'), secret: SECRET });
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    const { readFileSync } = await import('node:fs');
    await sql.unsafe(readFileSync(join(import.meta.dirname, '..', 'migrations', 'postgres', '010_coordination.sql'), 'utf8'));
    await sql`CREATE TABLE fenced_writes (holder text, token bigint, id text, at timestamptz DEFAULT clock_timestamp())`;
  }, 60_000);

  afterAll(async () => {
    for (const child of group.running) child.kill('SIGCONT');
    await group.stopAll();
    await stopAllDatanodeProcesses();
    await sql?.end({ timeout: 2 });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('one works at a time; kill -9 of it hands the work to another within the bound', async () => {
    const a = await holder('a');
    await untilValue(() => of('a', 'wrote').length >= 2, 'a writing');
    const b = await holder('b');
    await new Promise((r) => setTimeout(r, 2 * TTL_MS));
    expect(of('b', 'leader')).toEqual([]);
    expect(of('b', 'wrote')).toEqual([]);

    const killedAt = performance.now();
    a.kill('SIGKILL');
    await a.exited;
    await untilValue(() => of('b', 'wrote').some((e) => e.to === 'postgres'), 'b writing', { timeoutMs: 4 * TTL_MS });
    const took = performance.now() - killedAt;
    console.info(
      `kill -9 to the successor's first fenced write: ${Math.round(took)} ms (ttl ${TTL_MS} ms, bound ${takeoverBoundMs(TTL_MS)} ms + one pass)`,
    );
    expect(took).toBeLessThanOrEqual(takeoverBoundMs(TTL_MS) + 400 + 1000);
    expect(BigInt(of('b', 'leader')[0].token!)).toBe(BigInt(of('a', 'leader')[0].token!) + 1n);
    b.kill('SIGTERM');
    await b.exited;
  });

  it('a holder stopped mid-pass and resumed after the takeover has its writes refused by PostgreSQL and the datanode', async () => {
    const c = await holder('c');
    await untilValue(() => of('c', 'leader').length === 1, 'c leading', { timeoutMs: 4 * TTL_MS });
    await untilValue(() => of('c', 'wrote').length >= 2, 'c writing');
    // Stopped as a pass begins: it then works 400 ms before writing.
    const passes = of('c', 'working').length;
    await untilValue(() => of('c', 'working').length > passes, 'c beginning a pass');
    c.kill('SIGSTOP');
    const stale = of('c', 'leader')[0].token!;
    await holder('d');
    // Both of d's writes: the check below compares c's last database write with d's first one.
    await untilValue(() => ['datanode', 'postgres'].every((to) => of('d', 'wrote').some((e) => e.to === to)), 'd writing to both', {
      timeoutMs: 4 * TTL_MS,
    });
    const fresh = of('d', 'leader')[0].token!;
    expect(BigInt(fresh)).toBeGreaterThan(BigInt(stale));
    c.kill('SIGCONT');
    await untilValue(
      () => of('c', 'refused').length >= 2,
      () => `c refused twice (c said ${JSON.stringify(events.get('c')!.slice(-4))})`,
      {
        timeoutMs: 10_000,
      },
    );
    expect(new Set(of('c', 'refused').map((e) => e.by))).toEqual(new Set(['datanode', 'postgres']));
    expect(of('c', 'refused').every((e) => e.token === stale)).toBe(true);
    await untilValue(() => of('c', 'lost').length >= 1, 'c knowing it lost the lease');
    // Nothing c wrote landed after d's first write.
    const [{ last }] = await sql`SELECT max(at) AS last FROM fenced_writes WHERE holder = 'c'`;
    const [{ first }] = await sql`SELECT min(at) AS first FROM fenced_writes WHERE holder = 'd'`;
    expect((last as Date).getTime()).toBeLessThan((first as Date).getTime());
    expect(of('d', 'refused')).toEqual([]);
  });
});

const hostsUnavailable = netnsUnavailable() ?? pg.reason;
if (hostsUnavailable) console.warn(`leader-processes.test.ts (hosts) skipped: ${hostsUnavailable}`);

describe.skipIf(hostsUnavailable !== undefined)(
  `a holder on a host of its own, cut off from the database${hostsUnavailable ? ` (skipped: ${hostsUnavailable})` : ''}`,
  () => {
    const db = useTestDatabase();
    const events = new Map<string, Event[]>();
    const group = new ChildGroup();
    let sw: Switch;
    let relay: Relay;
    let sql: postgres.Sql;
    const of = (name: string, event: string) => events.get(name)!.filter((e) => e.event === event);
    const record = (name: string) => (line: string, stream: 'stdout' | 'stderr') => {
      if (stream !== 'stdout') return;
      try {
        events.get(name)!.push(JSON.parse(line) as Event);
      } catch {
        /* not an event */
      }
    };

    beforeAll(async () => {
      sql = postgres(db.url, { max: 2, onnotice: () => {} });
      const { readFileSync } = await import('node:fs');
      await sql.unsafe(readFileSync(join(import.meta.dirname, '..', 'migrations', 'postgres', '010_coordination.sql'), 'utf8'));
      await sql`CREATE TABLE fenced_writes (holder text, token bigint, id text, at timestamptz DEFAULT clock_timestamp())`;
      sw = createSwitch();
      const direct = new URL(db.url);
      relay = await startRelay(sw.address, { host: direct.hostname, port: Number(direct.port || 5432) });
    }, 60_000);

    afterAll(async () => {
      await group.stopAll();
      await relay?.close();
      sw?.close();
      await sql?.end({ timeout: 2 });
    });

    it('stops working before another takes over (packets to the database vanish), and resumes as a follower when the path heals', async () => {
      const far = sw.host('far');
      const viaRelay = new URL(db.url);
      viaRelay.hostname = relay.host;
      viaRelay.port = String(relay.port);
      events.set('far', []);
      events.set('near', []);
      const farChild = await startChild({
        name: 'lease holder far',
        command: 'ip',
        args: ['netns', 'exec', far.ns, process.execPath, '--import', 'tsx', ...holderArgs(viaRelay.toString(), 'far', 50)],
        group,
        timeoutMs: 20_000,
        ready: listeningLine,
        onLine: record('far'),
      });
      await untilValue(() => of('far', 'wrote').length >= 2, 'far writing', { timeoutMs: 4 * TTL_MS });
      await startChild({
        name: 'lease holder near',
        args: ['--import', 'tsx', ...holderArgs(db.url, 'near', 50)],
        group,
        timeoutMs: 20_000,
        ready: listeningLine,
        onLine: record('near'),
      });
      relay.cut();
      await untilValue(() => of('far', 'lost').length >= 1, 'far stopping', { timeoutMs: 4 * TTL_MS });
      // Within the lease's bound, or FENCED_IDLE_LIMIT_MS when far was cut in the middle of a fenced transaction (its lock on the row).
      await untilValue(() => of('near', 'wrote').length >= 1, 'near writing', { timeoutMs: 4 * TTL_MS + FENCED_IDLE_LIMIT_MS });
      // far stopped before near began, though it never heard back from the database.
      const [{ first }] = await sql`SELECT min(at) AS first FROM fenced_writes WHERE holder = 'near'`;
      const [{ last }] = await sql`SELECT max(at) AS last FROM fenced_writes WHERE holder = 'far'`;
      expect((last as Date).getTime()).toBeLessThan((first as Date).getTime());
      relay.heal();
      await new Promise((r) => setTimeout(r, 2 * TTL_MS));
      expect(of('far', 'leader')).toHaveLength(1); // it did not lead again: near holds the lease
      expect(of('far', 'crash')).toEqual([]);
      expect(farChild.hasExited(), farChild.stderr().slice(-1500)).toBe(false);
    });
  },
);
