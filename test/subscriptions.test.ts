// The Subscription root over both transports on /graphql (SSE and graphql-ws) against an
// in-process cluster: clusterEvents carries ImageStored, ImageDeleted and a new datanode's first
// status; datanodeHealth streams every datanode's samples (measured ones with the real sampler)
// and only one datanode's with `id`.
import { readFile, statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleSystem } from '../datanode/health.ts';
import { startCluster, startDatanode, TEST_SECRET, type TestCluster } from './support/cluster.ts';
import { subscribeSse, subscribeWs, type Subscription } from './support/subscriptions.ts';

const CLUSTER_EVENTS = /* GraphQL */ `
  subscription {
    clusterEvents {
      __typename
      at
      message
      ... on ImageStored {
        name
        size
      }
      ... on ImageDeleted {
        name
      }
      ... on DatanodeStatusChanged {
        previous
        status
        datanode {
          id
          url
          status
        }
      }
      ... on UploadExpired {
        name
      }
    }
  }
`;

const DATANODE_HEALTH = /* GraphQL */ `
  subscription ($id: ID) {
    datanodeHealth(id: $id) {
      at
      status
      cpuPercent
      memoryPercent
      diskPercent
      datanode {
        id
        url
      }
    }
  }
`;

interface Event {
  __typename: string;
  at: string;
  message: string;
  name?: string;
  size?: number;
  previous?: string | null;
  status?: string;
  datanode?: { id: string; url: string; status: string };
}

interface Health {
  at: string;
  status: string;
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
  datanode: { id: string; url: string };
}

async function both<T>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<Subscription<T>[]> {
  return Promise.all([subscribeSse<T>(url, query, variables), subscribeWs<T>(url, query, variables)]);
}

const closeAll = (subs: Subscription<unknown>[]) => Promise.all(subs.map((s) => s.close()));
const isIsoInstant = (s: string) => !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s;

describe('clusterEvents', () => {
  let cluster: TestCluster;
  let subs: Subscription<Event>[] = [];
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 3 });
  });
  afterAll(async () => {
    await closeAll(subs);
    await cluster?.close();
  });

  /** Subscribing is asynchronous on the server: publish a probe until every subscriber has one. */
  async function untilListening(subscriptions: Subscription<Event>[]) {
    const probe = setInterval(
      () => cluster.app.events.emit({ kind: 'UploadExpired', message: 'probe', name: '(probe)', uploadId: 'probe' }),
      50,
    );
    try {
      await Promise.all(
        subscriptions.map((s) => s.waitFor((e) => e.__typename === 'UploadExpired' && e.name === '(probe)', 'the probe event')),
      );
    } finally {
      clearInterval(probe);
    }
  }

  it('delivers ImageStored and ImageDeleted over SSE and graphql-ws', async () => {
    subs = await both<Event>(cluster.url, CLUSTER_EVENTS);
    await untilListening(subs);

    const bytes = randomBytes(150_000);
    const stored = await cluster.gql.multipart(
      `mutation($f: File!){ uploadImage(name: "events/a.png", file: $f, contentType: "image/png"){ name size } }`,
      { f: null },
      { 'variables.f': { data: bytes } },
    );
    expect(stored.errors).toBeUndefined();
    for (const sub of subs) {
      const event = await sub.waitFor((e) => e.__typename === 'ImageStored' && e.name === 'events/a.png', 'ImageStored');
      expect(event).toMatchObject({ name: 'events/a.png', size: bytes.length });
      expect(isIsoInstant(event.at)).toBe(true);
      expect(event.message).toContain('events/a.png');
    }

    expect(await cluster.gql(`mutation { deleteImage(name: "events/a.png") }`)).toEqual({ deleteImage: true });
    for (const sub of subs) {
      const event = await sub.waitFor((e) => e.__typename === 'ImageDeleted' && e.name === 'events/a.png', 'ImageDeleted');
      expect(event.message).toContain('events/a.png');
      expect(isIsoInstant(event.at)).toBe(true);
      // Exactly one of each per image.
      expect(sub.received.filter((e) => e.name === 'events/a.png').map((e) => e.__typename)).toEqual(['ImageStored', 'ImageDeleted']);
    }
  });

  it("announces a newly registered datanode's first status (previous null) on both transports", async () => {
    const extra = await startDatanode(join(cluster.dir, 'datanode-extra'), undefined, 3);
    try {
      const registered = await cluster.gql(
        `mutation($url: String!){ registerDatanode(url: $url){ id status } }`,
        { url: extra.url },
        { authorization: `Bearer ${TEST_SECRET}` },
      );
      const { id } = registered.registerDatanode;
      expect(registered.registerDatanode.status).toBe('UP');
      for (const sub of subs) {
        const event = await sub.waitFor(
          (e) => e.__typename === 'DatanodeStatusChanged' && e.datanode?.id === id,
          'its DatanodeStatusChanged',
        );
        expect(event).toMatchObject({ previous: null, status: 'UP', datanode: { id, url: extra.url, status: 'UP' } });
      }
      // Registering the same URL again is no new datanode and no new event.
      const again = await cluster.gql(
        `mutation($url: String!){ registerDatanode(url: $url){ id } }`,
        { url: extra.url },
        { authorization: `Bearer ${TEST_SECRET}` },
      );
      expect(again.registerDatanode.id).toBe(id);
      for (const sub of subs) expect(sub.received.filter((e) => e.datanode?.id === id)).toHaveLength(1);
    } finally {
      await extra.close();
    }
  });
});

describe('datanodeHealth with fixed samples', () => {
  let cluster: TestCluster;
  const subs: Subscription<Health>[] = [];
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 3 });
  });
  afterAll(async () => {
    await closeAll(subs);
    await cluster?.close();
  });

  it('streams a sample of every datanode, over SSE and graphql-ws', async () => {
    const datanodes: { id: string; url: string }[] = (await cluster.gql(`{ datanodes { id url } }`)).datanodes;
    expect(datanodes).toHaveLength(3);
    const all = await both<Health>(cluster.url, DATANODE_HEALTH);
    subs.push(...all);
    for (const sub of all) {
      // Two samples of each: samples keep coming, round after round.
      await sub.until(
        (got) => datanodes.every((d) => got.filter((s) => s.datanode.id === d.id).length >= 2),
        'two samples of every datanode',
      );
      for (const sample of sub.received) {
        const node = datanodes.find((d) => d.id === sample.datanode.id);
        expect(node, `a sample of an unknown datanode ${sample.datanode.id}`).toBeDefined();
        expect(sample).toMatchObject({ status: 'UP', cpuPercent: 5, memoryPercent: 30, diskPercent: 40, datanode: { url: node!.url } });
        expect(isIsoInstant(sample.at)).toBe(true);
      }
    }
  });

  it('with an id, streams only that datanode', async () => {
    const datanodes: { id: string }[] = (await cluster.gql(`{ datanodes { id } }`)).datanodes;
    const target = datanodes[1].id;
    const all = await subscribeSse<Health>(cluster.url, DATANODE_HEALTH);
    const filtered = await both<Health>(cluster.url, DATANODE_HEALTH, { id: target });
    subs.push(all, ...filtered);
    for (const sub of filtered) await sub.until((got) => got.length >= 5, 'five samples');
    // Meanwhile the other datanodes were sampled too: the filter, not silence, left them out.
    await all.until((got) => datanodes.every((d) => got.some((s) => s.datanode.id === d.id)), 'samples of every datanode');
    for (const sub of filtered) expect(new Set(sub.received.map((s) => s.datanode.id))).toEqual(new Set([target]));
  });
});

describe('datanodeHealth with measured samples', () => {
  let cluster: TestCluster;
  const subs: Subscription<Health>[] = [];
  beforeAll(async () => {
    // The datanodes' real sampler (systeminformation), as a datanode process uses.
    cluster = await startCluster({ datanodes: 2, sampleSystem });
  });
  afterAll(async () => {
    await closeAll(subs);
    await cluster?.close();
  });

  const percent = (n: number | null) => typeof n === 'number' && n >= 0 && n <= 100;

  it('streams and stores the machine figures each datanode measured', async () => {
    const all = await both<Health>(cluster.url, DATANODE_HEALTH);
    subs.push(...all);
    const ids: string[] = (await cluster.gql(`{ datanodes { id } }`)).datanodes.map((d: { id: string }) => d.id);
    for (const sub of all) {
      await sub.until((got) => ids.every((id) => got.some((s) => s.datanode.id === id)), 'a sample of every datanode');
      for (const s of sub.received) {
        expect(['UP', 'DEGRADED']).toContain(s.status); // a busy machine may well be DEGRADED
        expect([s.cpuPercent, s.memoryPercent, s.diskPercent].every(percent), JSON.stringify(s)).toBe(true);
      }
    }

    const { datanodes } = await cluster.gql(
      `{ datanodes { id url status lastSeenAt cpuPercent memoryPercent diskPercent diskFreeBytes } }`,
    );
    expect(datanodes).toHaveLength(2);
    const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => undefined);
    for (const [i, d] of (datanodes as Record<string, any>[]).entries()) {
      expect(['UP', 'DEGRADED']).toContain(d.status);
      expect(isIsoInstant(d.lastSeenAt)).toBe(true);
      expect([d.cpuPercent, d.memoryPercent, d.diskPercent].every(percent), JSON.stringify(d)).toBe(true);
      expect(Number.isSafeInteger(d.diskFreeBytes) && d.diskFreeBytes > 0).toBe(true);

      // Measured, not made up: the figures of this machine and of the data dir's filesystem.
      const fs = await statfs(cluster.nodes[i].dataDir);
      const free = fs.bavail * fs.bsize;
      expect(Math.abs(d.diskFreeBytes - free)).toBeLessThan(Math.max(free * 0.05, 256 * 1024 * 1024));
      const used = (fs.blocks - fs.bfree) * fs.bsize;
      expect(Math.abs(d.diskPercent - (used / (used + free)) * 100)).toBeLessThan(5);
      if (meminfo) {
        const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1]);
        const memoryPercent = ((kb('MemTotal') - kb('MemAvailable')) / kb('MemTotal')) * 100;
        expect(Math.abs(d.memoryPercent - memoryPercent)).toBeLessThan(15);
      }
    }
  });
});
