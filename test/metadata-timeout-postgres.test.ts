// The PostgreSQL engine's bounded waits (--metadata-timeout, src/metadata/postgres/bounded.ts) on
// a real server: a query blocked behind another connection's lock, and a server gone silent
// (a relay on the path that stops passing bytes: what a partition looks like to the client),
// both answer METADATA_UNAVAILABLE instead of waiting; once the lock goes or the path heals, the
// same store serves again. Without the bounds each call would wait until the test's timeout.
// Skipped, with the reason, without PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import postgres from 'postgres';
import { openPostgresMetadata, type PostgresMetadataStore } from '../src/metadata/postgres/index.ts';
import { withFence } from '../src/shared/fence.ts';
import { startRelay, type Relay } from './support/hosts.ts';
import { untilValue } from './support/poll.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const pg = await postgresAvailable();
const quiet = pino({ level: 'silent' });
const T = 1_700_000_000_000;
const unavailable = { code: 'METADATA_UNAVAILABLE', status: 503 };

describe.skipIf(!pg.adminUrl)(`bounded waits on PostgreSQL${skipNote(pg)}`, () => {
  const db = useTestDatabase();
  let store: PostgresMetadataStore;
  let other: postgres.Sql;

  beforeAll(async () => {
    store = await openPostgresMetadata(db.url, quiet, { timeoutMs: 1000 });
    other = postgres(db.url, { max: 1, onnotice: () => {} });
    await store.datanodes.insert('dn-1', 'http://127.0.0.1:1/a', T);
  });
  afterAll(async () => {
    await store?.close();
    await other?.end({ timeout: 2 });
  });

  it('a query waiting on a lock held by another connection is cancelled with METADATA_UNAVAILABLE, and the next one after the lock goes is served', async () => {
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = other.begin(async (tx) => {
      await tx`LOCK TABLE datanodes IN ACCESS EXCLUSIVE MODE`;
      locked();
      await new Promise<void>((r) => (release = r));
    });
    await isLocked;
    try {
      await expect(store.datanodes.all()).rejects.toMatchObject({ ...unavailable, message: expect.stringMatching(/--metadata-timeout/) });
      await expect(store.datanodes.setDraining('dn-1', true)).rejects.toMatchObject(unavailable);
    } finally {
      release();
      await holder;
    }
    // The cancelled write changed nothing; the store serves again.
    expect((await store.datanodes.all()).map((d) => [d.id, d.draining])).toEqual([['dn-1', false]]);
  });

  it('gives the fenced writes of a background pass a larger bound than API calls', async () => {
    // replica_deletions locked longer than the API's bounds (1 s statement, 1.5 s silent socket):
    // the API's write fails, the background pass's (fenced) one waits and goes through.
    await store.sql(`UPDATE leader_lease SET token = 7 WHERE name = 'background'`, []);
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = other.begin(async (tx) => {
      await tx`LOCK TABLE replica_deletions IN ACCESS EXCLUSIVE MODE`;
      locked();
      await new Promise((r) => setTimeout(r, 2500));
    });
    await isLocked;
    const pass = withFence('7', () => store.catalog.doomOrphan('bg', 'dn-1', T));
    await expect(store.catalog.doomOrphan('api', 'dn-1', T)).rejects.toMatchObject(unavailable);
    await pass;
    await holder;
    expect([await store.catalog.accountsFor('bg', 'dn-1'), await store.catalog.accountsFor('api', 'dn-1')]).toEqual([true, false]);
  });

  it('keeps a connection that is merely idle: every request counted on the wire was answered', async () => {
    // One connection (max=1), so its backend's pid shows whether the watch dropped it.
    const one = await openPostgresMetadata(`${db.url}${db.url.includes('?') ? '&' : '?'}max=1`, quiet, { timeoutMs: 1000 });
    try {
      const pid = async () => (await one.sql('SELECT pg_backend_pid() AS pid', []))[0]!.pid as number;
      const first = await pid();
      // Errors, a transaction, a long result, a large parameter and pipelined queries: each must leave nothing outstanding.
      await expect(one.datanodes.insert('dn-1', 'http://127.0.0.1:1/a', T)).rejects.toMatchObject({ code: '23505' });
      await one.catalog.moveReplicas('none', [], [], T);
      expect(await one.sql("SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g", [])).toHaveLength(20000);
      await one.sql('SELECT $1::text AS a', ['y'.repeat(200_000)]);
      await Promise.all(Array.from({ length: 20 }, (_, i) => one.sql('SELECT $1::int AS a', [i])));
      await expect(one.sql('SELECT 1/0', [])).rejects.toMatchObject({ code: '22012' });
      // Idle past the silent-socket limit (1.5 s here).
      await new Promise((r) => setTimeout(r, 2500));
      expect(await pid()).toBe(first);
    } finally {
      await one.close();
    }
  });

  it('keeps a connection whose answer arrived while this process was stalled past the limit', async () => {
    // A synchronous stall longer than the silent-socket limit (1.5 s here), with a query's answer
    // waiting in the socket: after it, timers run before the poll that reads the answer, so a
    // watch that trusted its timer alone would destroy the connection and fail the query.
    const one = await openPostgresMetadata(`${db.url}${db.url.includes('?') ? '&' : '?'}max=1`, quiet, { timeoutMs: 1000 });
    try {
      const pid = async () => (await one.sql('SELECT pg_backend_pid() AS pid', []))[0]!.pid as number;
      const first = await pid();
      const answer = one.sql('SELECT pg_sleep(0.5), 42 AS stalled', []);
      // Once the server runs it (the answer comes 0.5 s later), block the event loop.
      await untilValue(
        async () => (await other`SELECT 1 FROM pg_stat_activity WHERE pid = ${first} AND state = 'active'`).length > 0 || undefined,
        'the query running on the server',
      );
      const until = performance.now() + 2500;
      while (performance.now() < until) {
        /* the stall */
      }
      expect((await answer)[0]!.stalled).toBe(42);
      expect(await pid()).toBe(first);
    } finally {
      await one.close();
    }
  });

  describe('a server gone silent', () => {
    let relay: Relay;
    let far: PostgresMetadataStore;
    beforeAll(async () => {
      const direct = new URL(db.url);
      relay = await startRelay('127.0.0.1', { host: direct.hostname, port: Number(direct.port || 5432) });
      const viaRelay = new URL(db.url);
      viaRelay.hostname = relay.host;
      viaRelay.port = String(relay.port);
      far = await openPostgresMetadata(viaRelay.toString(), quiet, { timeoutMs: 1000 });
    });
    afterAll(async () => {
      await far?.close().catch(() => {});
      await relay?.close();
    });

    it('fails the calls on an open connection and on new ones with METADATA_UNAVAILABLE, and serves again once the path heals', async () => {
      expect((await far.datanodes.all()).map((d) => d.id)).toEqual(['dn-1']);
      relay.cut();
      // Several at once: they go on the pool's open connection and on new ones, which get no answer either.
      const calls = await Promise.allSettled([
        far.datanodes.all(),
        far.datanodes.byUrl('http://127.0.0.1:1/a'),
        far.catalog.accountsFor('f', 'dn-1'),
      ]);
      for (const call of calls) expect(call).toMatchObject({ status: 'rejected', reason: unavailable });
      await expect(far.datanodes.all()).rejects.toMatchObject(unavailable);
      relay.heal();
      const ids = await untilValue(
        async () => (await far.datanodes.all().catch(() => undefined))?.map((d) => d.id),
        'the store serving again after the heal',
        { timeoutMs: 10_000 },
      );
      expect(ids).toEqual(['dn-1']);
    });
  });
});
