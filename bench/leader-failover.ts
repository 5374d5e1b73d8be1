// Leader fail-over time with several coordinators on PostgreSQL: two coordinators and three
// datanodes on a fresh database; the coordinator holding the background lease is killed with
// SIGKILL, and the time until another holds it (the lease row names it, unexpired) is measured;
// the killed one is restarted (as a follower) and the next round begins. Prints each kill and the
// median. The database is created on the server of --admin-url and dropped at the end.
// --lease-only runs, instead of coordinators, the lease holders of test/support/lease-holder.ts
// (the coordinator's lease, gate and fencing in a bare process), and measures the time from the
// kill to the successor's first fenced write: the lease mechanism alone, without a coordinator.
//
//   npm run bench:failover -- --kills 3 --lease-ttl 10 [--lease-only] [--admin-url postgres://127.0.0.1:5432/test]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { ChildGroup, listeningLine, startChild, type Child } from '../src/launcher/child-process.ts';
import { INSTANCE_ID_FILE } from '../src/cluster/instance-id.ts';
import { takeoverBoundMs } from '../src/cluster/leader-lease.ts';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '3' },
    'lease-ttl': { type: 'string', default: '10' },
    'lease-only': { type: 'boolean', default: false },
    'admin-url': { type: 'string', default: process.env.TESSERA_TEST_POSTGRES_URL || 'postgres://127.0.0.1:5432/test' },
  },
});
const kills = Number(values.kills);
const ttlSec = Number(values['lease-ttl']);
const adminUrl = new URL(values['admin-url']);
if (!adminUrl.username) adminUrl.username = os.userInfo().username === 'root' ? 'postgres' : os.userInfo().username;

const group = new ChildGroup();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-failover-'));
const dbName = `tessera_failover_${process.pid}_${randomBytes(3).toString('hex')}`;
const admin = postgres(adminUrl.toString(), { max: 1, onnotice: () => {} });
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;
let sql: postgres.Sql | undefined;

const secret = randomBytes(24).toString('hex');
const env = { ...process.env, TESSERA_CLUSTER_SECRET: secret, LOG_LEVEL: 'warn' };

async function server(name: string, entry: string, args: string[]): Promise<Child & { ready: { url: string } }> {
  return startChild({ name, args: ['--import', 'tsx', entry, ...args], env, group, timeoutMs: 30_000, ready: listeningLine });
}

/** The contenders: started by name, each with its instance id (the lease's holder when it leads). */
interface Contenders {
  start(name: string): Promise<void>;
  child(name: string): Child;
  idOf(name: string): string;
  names(): string[];
}

async function coordinators(): Promise<Contenders> {
  const datanodes: Array<Child & { ready: { url: string } }> = [];
  for (let i = 0; i < 3; i++)
    datanodes.push(await server(`datanode ${i}`, 'datanode/main.ts', ['--port', '0', '--data-dir', path.join(dir, `dn-${i}`)]));
  const args = (name: string) => [
    ...['--port', '0', '--data-dir', path.join(dir, name), '--metadata', dbUrl.toString(), '--lease-ttl', String(ttlSec)],
    ...datanodes.flatMap((d) => ['--datanode', d.ready.url]),
  ];
  const members = new Map<string, Child>();
  return {
    start: async (name) => void members.set(name, await server(`coordinator ${name}`, 'src/main.ts', args(name))),
    child: (name) => members.get(name)!,
    idOf: (name) => fs.readFileSync(path.join(dir, name, INSTANCE_ID_FILE), 'utf8').trim(),
    names: () => [...members.keys()],
  };
}

async function leaseHolders(): Promise<Contenders> {
  await sql!`CREATE TABLE fenced_writes (holder text, token bigint, id text, at timestamptz DEFAULT clock_timestamp())`;
  const members = new Map<string, Child>();
  const args = (name: string) => ['--url', dbUrl.toString(), '--holder', name, '--ttl-ms', String(ttlSec * 1000), '--work-ms', '0'];
  return {
    start: async (name) => void members.set(name, await server(`lease holder ${name}`, 'test/support/lease-holder.ts', args(name))),
    child: (name) => members.get(name)!,
    idOf: (name) => name,
    names: () => [...members.keys()],
  };
}

async function main(): Promise<void> {
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  sql = postgres(dbUrl.toString(), { max: 1, onnotice: () => {} });
  if (values['lease-only']) {
    // The coordinators' migration makes the lease table; here there is no coordinator to run it.
    await sql.unsafe(fs.readFileSync(path.join(import.meta.dirname, '..', 'migrations', 'postgres', '010_coordination.sql'), 'utf8'));
  }
  const members = values['lease-only'] ? await leaseHolders() : await coordinators();
  await members.start('a');
  await members.start('b');
  const holder = async () => {
    const [row] = await sql!`SELECT holder FROM leader_lease WHERE expires_at > clock_timestamp()`;
    return row?.holder as string | undefined;
  };
  /** With --lease-only, the successor's first fenced write after `since` (else: the row names it). */
  const firstWriteSince = async (since: Date, by: string) => {
    const [row] = await sql!`SELECT 1 FROM fenced_writes WHERE holder = ${by} AND at > ${since}`;
    return row !== undefined;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const times: number[] = [];
  for (let k = 0; k < kills; k++) {
    let leader: string | undefined;
    while (leader === undefined) {
      const h = await holder();
      leader = members.names().find((n) => members.idOf(n) === h);
      if (leader === undefined) await sleep(50);
    }
    // Let the lease be renewed a few times first, as in a cluster that has run a while.
    await sleep(ttlSec * 1000);
    const victim = members.child(leader);
    const [{ now }] = await sql`SELECT clock_timestamp() AS now`;
    const killedAt = performance.now();
    victim.kill('SIGKILL');
    await victim.exited;
    const oldId = members.idOf(leader);
    for (;;) {
      const h = await holder();
      if (h !== undefined && h !== oldId && (!values['lease-only'] || (await firstWriteSince(now as Date, h)))) break;
      await sleep(20);
    }
    const ms = performance.now() - killedAt;
    times.push(ms);
    process.stdout.write(
      `kill ${k + 1}: ${leader} killed, another ${values['lease-only'] ? 'wrote under the lease' : 'held the lease'} ${Math.round(ms)} ms later\n`,
    );
    await members.start(leader);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  process.stdout.write(
    `leader fail-over${values['lease-only'] ? ' (lease holders only)' : ''} (lease ttl ${ttlSec} s, documented bound ${takeoverBoundMs(ttlSec * 1000)} ms): ` +
      `median ${Math.round(median)} ms, min ${Math.round(sorted[0])} ms, max ${Math.round(sorted.at(-1)!)} ms over ${times.length} kills\n`,
  );
}

async function cleanup(): Promise<void> {
  await group.stopAll();
  await sql?.end({ timeout: 2 });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
  await admin.end({ timeout: 2 });
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => cleanup(),
  async (err: unknown) => {
    process.stderr.write(`bench:failover: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  },
);
