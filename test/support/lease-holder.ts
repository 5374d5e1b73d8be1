// A minimal background worker as a process: the coordinator's lease, scheduler gate and fencing
// (the same modules), with one background loop whose pass works a while, then writes under its
// token to PostgreSQL (the engine's fence check first, in the same transaction) and to a datanode
// (a signed, fenced PUT). It prints one JSON line per event ("leader", "lost", "wrote",
// "refused") so a test can kill -9 it, SIGSTOP it mid-pass and see what it does after. Run by
// test/leader-processes.test.ts and bench/leader-failover.ts --lease-only.
//
//   node --import tsx test/support/lease-holder.ts --url postgres://... --holder a --ttl-ms 2000 [--datanode URL --secret S --cluster ID]
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { createLeaderLease, postgresLeaseStore } from '../../src/cluster/leader-lease.ts';
import { createDatanodeClient, DatanodeHttpError } from '../../src/cluster/datanode-client.ts';
import { createScheduler } from '../../src/shared/scheduler.ts';
import { currentFence, FENCE_CHECK_SQL, FencedError } from '../../src/shared/fence.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    holder: { type: 'string' },
    'ttl-ms': { type: 'string', default: '2000' },
    'work-ms': { type: 'string', default: '300' },
    datanode: { type: 'string' },
    secret: { type: 'string' },
    cluster: { type: 'string' },
  },
});
const holder = values.holder!;
const say = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ event, holder, ...fields }) + '\n');

const sql = postgres(values.url!, { max: 2, onnotice: () => {} });
const query = (text: string, params: unknown[]) => sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]) as never;
const lease = createLeaderLease({
  store: postgresLeaseStore(query),
  holder,
  ttlMs: Number(values['ttl-ms']),
  onAcquired: (token) => say('leader', { token }),
  onLost: (why) => say('lost', { why }),
});
const client =
  values.datanode === undefined
    ? undefined
    : createDatanodeClient({ secret: values.secret, identity: { clusterId: () => values.cluster, expectedNodeId: () => undefined } });

const scheduler = createScheduler({ gate: lease.isLeader, fence: lease.token });
let n = 0;
const loop = scheduler.loop(
  'work',
  async () => {
    const token = currentFence()!;
    say('working', { token });
    await new Promise((r) => setTimeout(r, Number(values['work-ms']))); // the pass works a while...
    n += 1;
    const id = `${holder}-${n}`;
    if (client) {
      // ...then writes to a datanode under its token,
      try {
        const bytes = Buffer.from(id);
        await client.putFragment(values.datanode!, id, bytes, createHash('sha256').update(bytes).digest('hex'));
        say('wrote', { to: 'datanode', token, id });
      } catch (err) {
        if (!(err instanceof DatanodeHttpError && err.code === 'STALE_FENCE')) throw err;
        say('refused', { by: 'datanode', token, id });
      }
    }
    // ...and to PostgreSQL, checked against the lease row in the same transaction (as the engine does).
    try {
      await sql.begin(async (tx) => {
        if ((await tx.unsafe(FENCE_CHECK_SQL, [token])).length === 0) throw new FencedError(token);
        await tx`INSERT INTO fenced_writes (holder, token, id) VALUES (${holder}, ${token}, ${id})`;
      });
      say('wrote', { to: 'postgres', token, id });
    } catch (err) {
      if (!(err instanceof FencedError)) throw err;
      say('refused', { by: 'postgres', token, id });
    }
  },
  { everyMs: 50 },
);

// A crash is an event too: the test shows it instead of only seeing the process gone.
for (const kind of ['uncaughtException', 'unhandledRejection'] as const)
  process.on(kind, (err: unknown) => {
    say('crash', { kind, err: String((err as Error)?.stack ?? err) });
    process.exit(1);
  });
await sql`CREATE TABLE IF NOT EXISTS fenced_writes (holder text, token bigint, id text, at timestamptz DEFAULT clock_timestamp())`;
lease.start();
loop.start();
say('listening', { url: 'lease://' + holder });
process.once('SIGTERM', () => {
  void (async () => {
    await scheduler.stop();
    await lease.stop();
    client?.close();
    await sql.end({ timeout: 1 });
    process.exit(0);
  })();
});
