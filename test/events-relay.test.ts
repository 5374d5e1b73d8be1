// The event bus across coordinators, against a real PostgreSQL: two buses in one process stand
// for two coordinators on one database. Every subscriber gets every event once, its own
// coordinator's included; events sent inside a change's transaction arrive in commit order; the
// LISTEN connection comes back after the server drops it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { createEventBus, type ClusterEvent, type EventBus, type HealthSample, type RemoteMessage } from '../src/events.ts';
import { decode, encode, MAX_PAYLOAD_BYTES } from '../src/events-relay.ts';
import { postgresNotifyTransport } from '../src/events-postgres.ts';
import { until } from './support/poll.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const server = await postgresAvailable();

/** Collects what a subscription yields, until stopped. */
function collect<T>(iterator: AsyncIterableIterator<T> | AsyncGenerator<T>) {
  const items: T[] = [];
  const done = (async () => {
    for await (const item of iterator) items.push(item);
  })();
  return { items, stop: async () => void (await iterator.return?.(undefined), await done) };
}

const datanode = {
  id: 'dn-1',
  url: 'http://127.0.0.1:1/',
  nodeId: 'n1',
  status: 'UP' as const,
  statusSince: 1,
  registeredAt: 1,
  lastSeenAt: 2,
  cpuPercent: 3,
  memoryPercent: 4,
  diskPercent: 5,
  diskFreeBytes: 6,
  fragmentCount: 7,
  storedBytes: 8,
  draining: false,
  identityFault: null,
};

describe.skipIf(!server.adminUrl)(`events between coordinators on PostgreSQL${skipNote(server)}`, () => {
  const db = useTestDatabase();
  let a: EventBus;
  let b: EventBus;
  const transports: ReturnType<typeof postgresNotifyTransport>[] = [];
  let sql: postgres.Sql;

  const bus = (origin: string) => {
    const transport = postgresNotifyTransport(db.url);
    transports.push(transport);
    return createEventBus({ relay: { transport, origin } });
  };

  beforeAll(async () => {
    a = bus('coordinator-a');
    b = bus('coordinator-b');
    await Promise.all([a.start(), b.start()]);
    sql = postgres(db.url, { max: 3, onnotice: () => {} });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await Promise.all(transports.map((t) => t.close()));
    await sql?.end();
  });

  it('delivers an event sent on one coordinator to subscribers on both, once each, its Date revived', async () => {
    const onA = collect(a.clusterEvents());
    const onB = collect(b.clusterEvents());
    b.emit({ kind: 'ImageDeleted', message: 'Image "x" deleted.', name: 'x' });
    await until(() => onA.items.length === 1 && onB.items.length === 1, 'the event on both coordinators');
    // A second event behind it proves no late duplicate of the first is on its way.
    a.emit({ kind: 'ImageDeleted', message: 'Image "y" deleted.', name: 'y' });
    await until(() => onA.items.length === 2 && onB.items.length === 2, 'the second event on both');
    await Promise.all([onA.stop(), onB.stop()]);
    for (const items of [onA.items, onB.items]) {
      expect(items.map((e: ClusterEvent) => (e.kind === 'ImageDeleted' ? e.name : e.kind))).toEqual(['x', 'y']);
      expect(items[0].at).toBeInstanceOf(Date);
    }
  });

  it('relays health samples with their datanode, and filters them by datanode', async () => {
    const all = collect(a.healthSamples());
    const other = collect(a.healthSamples('dn-2'));
    const sample: HealthSample = { at: new Date(), datanode, status: 'UP', cpuPercent: 3, memoryPercent: 4, diskPercent: 5 };
    b.sample(sample);
    b.sample({ ...sample, datanode: { ...datanode, id: 'dn-2' } });
    await until(() => all.items.length === 2 && other.items.length === 1, 'both samples on A');
    await Promise.all([all.stop(), other.stop()]);
    expect(all.items[0]).toEqual(sample);
    expect(other.items[0].datanode.id).toBe('dn-2');
  });

  it("sends an outbox with its transaction's commit, in commit order, and nothing for a rolled-back one", async () => {
    const onA = collect(a.clusterEvents());
    const stored = b.notice({ kind: 'ImageStored', message: 'Image "p" stored (3 bytes).', name: 'p', size: 3 });
    const deleted = a.notice({ kind: 'ImageDeleted', message: 'Image "p" deleted.', name: 'p' });
    const never = a.notice({ kind: 'ImageDeleted', message: 'Image "q" deleted.', name: 'q' });
    const [t1, t2, t3] = await Promise.all([sql.reserve(), sql.reserve(), sql.reserve()]);
    try {
      // The deletion's NOTIFY is issued first but its transaction commits last: commit order wins.
      await t2`BEGIN`;
      await t2`SELECT pg_notify(${deleted.channel}, ${deleted.payload})`;
      await t1`BEGIN`;
      await t1`SELECT pg_notify(${stored.channel}, ${stored.payload})`;
      await t3`BEGIN`;
      await t3`SELECT pg_notify(${never.channel}, ${never.payload})`;
      await t1`COMMIT`;
      await t3`ROLLBACK`;
      await t2`COMMIT`;
    } finally {
      for (const t of [t1, t2, t3]) t.release();
    }
    stored.sent = deleted.sent = true;
    b.committed(stored); // the transaction sent it: nothing more goes out
    a.committed(deleted);
    a.emit({ kind: 'ImageDeleted', message: 'end', name: 'end' });
    await until(() => onA.items.length === 3, 'three events on A');
    await onA.stop();
    expect(onA.items.map((e) => e.kind + ':' + ('name' in e ? e.name : ''))).toEqual([
      'ImageStored:p',
      'ImageDeleted:p',
      'ImageDeleted:end',
    ]);
  });

  it('publishes an outbox no transaction sent once its change committed', async () => {
    const onB = collect(b.clusterEvents());
    const notice = a.notice({ kind: 'ImageStored', message: 'Image "s" stored (1 bytes).', name: 's', size: 1 });
    a.committed(notice);
    await until(() => onB.items.length === 1, 'the event on B');
    await onB.stop();
    expect(onB.items[0]).toMatchObject({ kind: 'ImageStored', name: 's', size: 1 });
  });

  it("hands another coordinator's messages, never its own, to onRemote", async () => {
    const seenByA: RemoteMessage[] = [];
    const seenByB: RemoteMessage[] = [];
    a.onRemote((m) => seenByA.push(m));
    b.onRemote((m) => seenByB.push(m));
    a.tellOthers({ kind: 'tokenRevoked', id: 'tok1' });
    b.tellOthers({ kind: 'datanodeChanged', id: 'dn-9' });
    await until(() => seenByA.length === 1 && seenByB.length === 1, 'one notice each');
    expect(seenByA).toEqual([{ topic: 'coordinatorNotice', notice: { kind: 'datanodeChanged', id: 'dn-9' } }]);
    expect(seenByB).toEqual([{ topic: 'coordinatorNotice', notice: { kind: 'tokenRevoked', id: 'tok1' } }]);
  });

  it('listens again after the server drops its connections, and says so', async () => {
    let restored = 0;
    a.onRestored(() => (restored += 1));
    const onA = collect(a.clusterEvents());
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tessera events'`;
    await until(() => restored >= 1, 'the LISTEN connection back', 15_000);
    b.emit({ kind: 'ImageDeleted', message: 'after', name: 'after' });
    await until(() => onA.items.length >= 1, 'an event after the reconnection', 15_000);
    await onA.stop();
    expect(onA.items.map((e) => ('name' in e ? e.name : ''))).toContain('after');
  });
  it('listens again when the database refused new connections for a while', async () => {
    let restored = 0;
    a.onRestored(() => (restored += 1));
    const onA = collect(a.clusterEvents());
    const [{ name }] = await sql<{ name: string }[]>`SELECT current_database() AS name`;
    // Only from another database (the admin one).
    const admin = postgres(server.adminUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    try {
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tessera events'`;
      await new Promise((r) => setTimeout(r, 1500)); // re-listening fails meanwhile
    } finally {
      await admin.unsafe(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    // Re-listened by postgres.js, or else by the heartbeat (5 s + 5 s) on a new connection.
    await until(() => restored >= 1, 'the LISTEN connection back', 25_000);
    b.emit({ kind: 'ImageDeleted', message: 'later', name: 'later' });
    await until(() => onA.items.length >= 1, 'an event after the reconnection', 15_000);
    await onA.stop();
    expect(onA.items.map((e) => ('name' in e ? e.name : ''))).toContain('later');
  }, 45_000);
});

describe('event payloads', () => {
  it('stay under the NOTIFY limit, shortening an overlong message', () => {
    const name = '\u0001'.repeat(255);
    const payload = encode({
      t: 'clusterEvent',
      o: 'c',
      d: { kind: 'ImageDeleted', name, message: `${name}`.repeat(20), at: new Date(0) },
    });
    expect(Buffer.byteLength(payload)).toBeLessThan(MAX_PAYLOAD_BYTES);
    const back = decode(payload)!;
    expect((back.d as { name: string; at: Date }).name).toBe(name);
    expect((back.d as { at: Date }).at).toEqual(new Date(0));
  });

  it('ignore what is not one of ours', () => {
    expect(decode('not json')).toBeUndefined();
    expect(decode('{"t":1}')).toBeUndefined();
  });
});
