// Leader fail-over time with several coordinators on PostgreSQL: two coordinators and three
// datanodes on a fresh database; the coordinator holding the background lease is killed with
// SIGKILL, and the time until another holds it (the lease row names it, unexpired) is measured;
// the killed one is restarted (as a follower) and the next round begins. Prints each kill and the
// median. The database is created on the server of --admin-url and dropped at the end.
//
//   npm run bench:failover -- --kills 3 --lease-ttl 10 [--admin-url postgres://127.0.0.1:5432/test]
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

async function main(): Promise<void> {
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  sql = postgres(dbUrl.toString(), { max: 1, onnotice: () => {} });
  const datanodes: Array<Child & { ready: { url: string } }> = [];
  for (let i = 0; i < 3; i++)
    datanodes.push(await server(`datanode ${i}`, 'datanode/main.ts', ['--port', '0', '--data-dir', path.join(dir, `dn-${i}`)]));
  const coordinatorArgs = (name: string) => [
    '--port',
    '0',
    '--data-dir',
    path.join(dir, name),
    '--metadata',
    dbUrl.toString(),
    '--lease-ttl',
    String(ttlSec),
    ...datanodes.flatMap((d) => ['--datanode', d.ready.url]),
  ];
  const members = new Map<string, Child>();
  const start = async (name: string) => members.set(name, await server(`coordinator ${name}`, 'src/main.ts', coordinatorArgs(name)));
  await start('a');
  await start('b');
  const idOf = (name: string) => fs.readFileSync(path.join(dir, name, INSTANCE_ID_FILE), 'utf8').trim();
  const holder = async () => {
    const [row] = await sql!`SELECT holder FROM leader_lease WHERE expires_at > clock_timestamp()`;
    return row?.holder as string | undefined;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const times: number[] = [];
  for (let k = 0; k < kills; k++) {
    let leader: string | undefined;
    while (leader === undefined) {
      const h = await holder();
      leader = [...members.keys()].find((n) => idOf(n) === h);
      if (leader === undefined) await sleep(50);
    }
    // Let the lease be renewed a few times first, as in a cluster that has run a while.
    await sleep(ttlSec * 1000);
    const victim = members.get(leader)!;
    const killedAt = performance.now();
    victim.kill('SIGKILL');
    await victim.exited;
    const oldId = idOf(leader);
    for (;;) {
      const h = await holder();
      if (h !== undefined && h !== oldId) break;
      await sleep(20);
    }
    const ms = performance.now() - killedAt;
    times.push(ms);
    process.stdout.write(`kill ${k + 1}: coordinator ${leader} killed, another led ${Math.round(ms)} ms later\n`);
    await start(leader);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  process.stdout.write(
    `leader fail-over (lease ttl ${ttlSec} s, documented bound ${takeoverBoundMs(ttlSec * 1000)} ms): median ${Math.round(median)} ms, ` +
      `min ${Math.round(sorted[0])} ms, max ${Math.round(sorted.at(-1)!)} ms over ${times.length} kills\n`,
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
