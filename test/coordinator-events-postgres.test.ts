// Two real coordinators (createCoordinator, in one process) linked through a real PostgreSQL
// database: an image stored and deleted through one is announced to the subscribers of both,
// once each and in order; the leader's health samples reach the other; a token revoked through
// one ends its live subscriptions on the other; a coordinator with another cluster secret
// refuses to start.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../src/config.ts';
import { createCoordinator, type Coordinator } from '../src/coordinator.ts';
import type { ClusterEvent } from '../src/events.ts';
import { openPostgresMetadata, type PostgresMetadataStore } from '../src/metadata/postgres/index.ts';
import { startDatanode, TEST_SECRET, type TestDatanode } from './support/cluster.ts';
import { until } from './support/poll.ts';
import { postgresAvailable, skipNote, useTestDatabase } from './support/postgres.ts';

const server = await postgresAvailable();
const log = pino({ level: 'silent' });

/** Every event a coordinator's subscriber receives, as kind:name. */
function listen(app: Coordinator) {
  const seen: string[] = [];
  const events = app.events.clusterEvents();
  void (async () => {
    for await (const e of events as AsyncIterable<ClusterEvent>) seen.push(`${e.kind}:${'name' in e ? e.name : ''}`);
  })();
  return { seen, stop: () => events.return?.(undefined) };
}

describe.skipIf(!server.adminUrl)(`two coordinators' events through PostgreSQL${skipNote(server)}`, () => {
  const db = useTestDatabase();
  let dir: string;
  let nodes: TestDatanode[] = [];
  const stores: PostgresMetadataStore[] = [];
  const apps: Coordinator[] = [];

  const coordinator = async (i: number, secret = TEST_SECRET) => {
    const store = await openPostgresMetadata(db.url, log, { instanceId: `c${i}` });
    stores.push(store);
    const config = makeConfig({
      dataDir: join(dir, `c${i}`),
      secret,
      fragmentSize: 4096,
      healthIntervalMs: 200,
      leaseTtlSec: 3,
      datanodes: nodes.map((n) => n.url),
      // Far beyond any wait here: a verified token is refused early only because a notice dropped it.
      verifiedTokenTtlMs: 60_000,
    });
    return createCoordinator(config, log, { sql: store.sql, instanceId: `c${i}`, url: db.url });
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-coordinator-events-'));
    nodes = await Promise.all([0, 1, 2].map((i) => startDatanode(join(dir, `datanode-${i}`), undefined, i)));
    // The first leads (alone when it starts): its samples set the datanodes' statuses on both.
    // Each coordinator keeps its own SQLite index here (the coordinator opens PostgreSQL for its
    // index only later): uploads go through the leader, whose datanode ids those are.
    apps.push(await coordinator(0));
    await apps[0].start();
    await until(() => apps[0].cluster.liveDatanodes().length === 3, 'the leader to see three live datanodes', 15_000);
    apps.push(await coordinator(1));
    await apps[1].start();
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all(nodes.map((n) => n.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('announces an image stored and deleted through one coordinator to the subscribers of both, once each, in order', async () => {
    const on = apps.map(listen);
    await until(() => apps.every((a) => a.cluster.liveDatanodes().length === 3), 'three live datanodes on both', 15_000);
    await apps[0].uploads.uploadWhole('linked/one', Buffer.alloc(10_000, 1));
    await apps[0].images.delete('linked/one');
    await apps[0].uploads.uploadWhole('linked/sentinel', Buffer.alloc(10, 2));
    // Events arrive in commit order: whatever there is about linked/one came before the sentinel.
    for (const { seen } of on) {
      await until(() => seen.includes('ImageStored:linked/sentinel'), 'the sentinel');
      expect(seen.filter((e) => e.endsWith(':linked/one'))).toEqual(['ImageStored:linked/one', 'ImageDeleted:linked/one']);
    }
    await Promise.all(on.map((o) => o.stop()));
  });

  it("relays the leader's health samples to the other coordinator", async () => {
    const samples: string[] = [];
    const iterator = apps[1].events.healthSamples();
    void (async () => {
      for await (const s of iterator) samples.push(s.datanode.id);
    })();
    await until(() => new Set(samples).size === 3, 'samples of the three datanodes', 15_000);
    await iterator.return?.(undefined);
  });

  it("ends a revoked token's live subscriptions on the other coordinator", async () => {
    const { token } = await Promise.resolve(apps[0].auth.tokens.create('reader', 'read'));
    let ended = false;
    apps[1].auth.quotas.startSubscription({ kind: 'token', id: token.id, name: 'reader', role: 'read' }, () => (ended = true));
    await Promise.resolve(apps[0].auth.revoke(token.id));
    await until(() => ended, 'the subscription on the other coordinator to end');
  });

  it('a token revoked through another coordinator is refused once its notice arrives', async () => {
    // Each coordinator has its own index here: the token is revoked in the other's rows behind
    // its back, and the notice comes through PostgreSQL as a revocation made elsewhere would.
    const { token, secret } = await Promise.resolve(apps[1].auth.tokens.create('writer', 'write'));
    expect((await apps[1].auth.authenticate(`Bearer ${secret}`)).id).toBe(token.id); // now verified there
    await apps[1].internals.metadata.tokens.revoke(token.id, Date.now());
    // Not told yet: still trusted (the TTL is 60 s here, so this holds on however slow a machine).
    expect((await apps[1].auth.authenticate(`Bearer ${secret}`)).id).toBe(token.id);
    apps[0].events.tellOthers({ kind: 'tokenRevoked', id: token.id });
    await until(
      async () => (await apps[1].auth.authenticate(`Bearer ${secret}`).catch(() => undefined)) === undefined,
      'the token refused',
    );
  });

  it('refuses to start a coordinator with another cluster secret', async () => {
    const other = await coordinator(9, 'another-secret');
    await expect(other.start()).rejects.toThrow(/another cluster secret/);
    await other.stop();
  });
});
