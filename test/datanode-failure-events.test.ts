// Health seen from outside, with real processes: datanodes started with --coordinator register
// themselves and each appears with its own first status event; kill -9 of one is a DOWN event
// over SSE and graphql-ws within 15 s; uploads then go to live datanodes only, and with fewer
// live datanodes than the replication factor they store nothing; after a coordinator restart
// `datanodes` shows the last stored samples.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCoordinatorProcess, type CoordinatorProcess } from './support/coordinator-process.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses, type DatanodeProcess } from './support/datanode-process.ts';
import { codeOf, createGraphQLClient } from './support/graphql.ts';
import { subscribeSse, subscribeWs, type Subscription } from './support/subscriptions.ts';
import type { Datanode } from '../src/client/types.ts';

const SECRET = 'failure-events-secret';
const AUTH = { authorization: `Bearer ${SECRET}` };
const FRAGMENT = 64 * 1024;
/** The contract's promise for a killed datanode. */
const DOWN_BUDGET_MS = 15_000;
/** Starting a tsx process takes seconds on a busy 2-core machine: wait generously. */
const START_TIMEOUT_MS = 45_000;
/**
 * Short rounds keep the file fast. Thresholds at 100 %: the datanodes measure this (possibly
 * very busy) machine, and only a saturated one may make them DEGRADED. No repair or scrubbing
 * during the test: what is pinned here is placement and status, not recovery.
 */
const COORDINATOR_ARGS = [
  '--health-interval-ms',
  '500',
  '--replication-factor',
  '2',
  '--fragment-size',
  String(FRAGMENT),
  '--degraded-cpu',
  '100',
  '--degraded-memory',
  '100',
  '--degraded-disk',
  '100',
  '--repair-after',
  '3600',
  '--scrub-rate',
  '0',
];

const EVENTS = /* GraphQL */ `
  subscription {
    clusterEvents {
      __typename
      at
      message
      ... on DatanodeStatusChanged {
        previous
        status
        datanode {
          id
          url
          cpuPercent
          memoryPercent
          diskPercent
        }
      }
    }
  }
`;

const DATANODES = /* GraphQL */ `
  {
    datanodes {
      id
      url
      status
      lastSeenAt
      cpuPercent
      memoryPercent
      diskPercent
      diskFreeBytes
      fragmentCount
      storedBytes
    }
    cluster {
      datanodeCount
      liveDatanodeCount
    }
  }
`;

interface StatusEvent {
  __typename: string;
  at: string;
  message: string;
  previous?: string | null;
  status?: string;
  datanode?: { id: string; url: string; cpuPercent: number | null; memoryPercent: number | null; diskPercent: number | null };
}

const LIVE = ['UP', 'DEGRADED'];
const statusChangesOf = (events: readonly StatusEvent[], id: string) =>
  events.filter((e) => e.__typename === 'DatanodeStatusChanged' && e.datanode?.id === id);

describe('datanode failure, seen from outside (real processes)', { timeout: 90_000 }, () => {
  let dir: string;
  let coordinator: CoordinatorProcess;
  const coordinators: CoordinatorProcess[] = [];
  const datanodes: DatanodeProcess[] = [];
  let subs: Subscription<StatusEvent>[] = [];
  /** Datanode id by URL, as the coordinator named them. */
  const ids = new Map<string, string>();
  const gql = createGraphQLClient(() => coordinator.url);
  const idOf = (d: DatanodeProcess) => ids.get(d.url)!;
  let storedImage: { name: string; bytes: Buffer } | undefined;

  const startCoordinator = async () => {
    coordinator = await startCoordinatorProcess({
      dataDir: join(dir, 'coordinator'),
      secret: SECRET,
      args: COORDINATOR_ARGS,
      timeoutMs: START_TIMEOUT_MS,
    });
    coordinators.push(coordinator);
  };
  const datanodesNow = async () =>
    (await gql(DATANODES)) as { datanodes: Datanode[]; cluster: { datanodeCount: number; liveDatanodeCount: number } };

  /** Kills a datanode with SIGKILL and waits for its DOWN event on every subscription. */
  async function killAndAwaitDown(victim: DatanodeProcess): Promise<number[]> {
    const id = idOf(victim);
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    await victim.exited;
    return Promise.all(
      subs.map(async (sub) => {
        const event = await sub.waitFor(
          (e) => e.__typename === 'DatanodeStatusChanged' && e.datanode?.id === id && e.status === 'DOWN',
          `the DOWN event of ${id}`,
          DOWN_BUDGET_MS + 10_000,
        );
        const elapsed = Date.now() - killedAt;
        expect(LIVE).toContain(event.previous);
        expect(event.datanode!.url).toBe(victim.url);
        expect(event.message).toMatch(/DOWN/);
        return elapsed;
      }),
    );
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-failure-events-'));
    await startCoordinator();
  }, START_TIMEOUT_MS + 5_000);

  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      console.error(`coordinator log (tail):\n${coordinator?.stderr().slice(-6000)}`);
    });
  });

  afterAll(async () => {
    await Promise.all(subs.map((s) => s.close()));
    await Promise.all([...datanodes, ...coordinators].map((p) => p.stop()));
    await stopAllDatanodeProcesses(); // one whose start failed half-way, if any
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('datanodes started with --coordinator register themselves, each with its own first status event (previous null)', async () => {
    subs = await Promise.all([subscribeSse<StatusEvent>(coordinator.url, EVENTS), subscribeWs<StatusEvent>(coordinator.url, EVENTS)]);
    const started = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const d = await startDatanodeProcess({
          dataDir: join(dir, `datanode-${i}`),
          secret: SECRET,
          coordinator: coordinator.url,
          extraArgs: ['--health-interval-ms', '250'],
          timeoutMs: START_TIMEOUT_MS,
        });
        datanodes[i] = d;
        return d;
      }),
    );

    for (const sub of subs) {
      await sub.until(
        (got) => started.every((d) => got.some((e) => e.__typename === 'DatanodeStatusChanged' && e.datanode?.url === d.url)),
        'a status event of every datanode',
      );
      for (const d of started) {
        // Its first event is its first status; a saturated machine may flip it to DEGRADED and
        // back later, but there is only ever one first status.
        const own = sub.received.filter((e) => e.datanode?.url === d.url);
        expect(
          own.filter((e) => e.previous === null),
          `${sub.transport}: first status events of ${d.url}`,
        ).toHaveLength(1);
        const [event] = own;
        expect(event.previous).toBeNull();
        // UP unless this machine is saturated (a measured 100 %): then DEGRADED, by the rules.
        const { cpuPercent, memoryPercent, diskPercent } = event.datanode!;
        const saturated = [cpuPercent, memoryPercent, diskPercent].some((p) => p === 100);
        expect(event.status).toBe(saturated ? 'DEGRADED' : 'UP');
        const known = ids.get(d.url);
        if (known) expect(event.datanode!.id).toBe(known);
        ids.set(d.url, event.datanode!.id);
      }
    }
    expect(new Set(ids.values()).size).toBe(3);

    const { datanodes: listed, cluster } = await datanodesNow();
    expect(listed.map((d) => [d.url, d.id]).sort()).toEqual(started.map((d) => [d.url, idOf(d)]).sort());
    for (const d of listed) {
      expect(LIVE).toContain(d.status);
      expect(d.lastSeenAt).not.toBeNull();
    }
    expect(cluster).toEqual({ datanodeCount: 3, liveDatanodeCount: 3 });
  });

  it('registerDatanode with the same URL (and the secret) returns the same datanode', async () => {
    const REGISTER = `mutation($url: String!){ registerDatanode(url: $url){ id url } }`;
    for (const d of datanodes) {
      const again = await gql(REGISTER, { url: d.url }, AUTH);
      expect(again.registerDatanode).toEqual({ id: idOf(d), url: d.url });
      // The same URL with a trailing slash is still the same datanode.
      expect((await gql(REGISTER, { url: `${d.url}/` }, AUTH)).registerDatanode.id).toBe(idOf(d));
    }
    expect(codeOf(await gql.request(REGISTER, { url: datanodes[0].url }, { authorization: '' }))).toBe('UNAUTHENTICATED'); // no credential at all
    expect(codeOf(await gql.request(REGISTER, { url: datanodes[0].url }, { authorization: 'Bearer not-the-secret' }))).toBe(
      'UNAUTHENTICATED',
    );
    const { cluster } = await datanodesNow();
    expect(cluster.datanodeCount).toBe(3);
    // No new datanode, so no new first status (previous null) either.
    for (const sub of subs) {
      for (const d of datanodes) expect(statusChangesOf(sub.received, idOf(d)).filter((e) => e.previous === null)).toHaveLength(1);
      expect(new Set(sub.received.map((e) => e.datanode?.id))).toEqual(new Set(ids.values()));
    }
  });

  it('kill -9 of a datanode is a DatanodeStatusChanged DOWN event over SSE and graphql-ws within 15 s', async () => {
    const [victim, ...alive] = datanodes;
    const elapsed = await killAndAwaitDown(victim);
    for (const ms of elapsed) expect(ms).toBeLessThanOrEqual(DOWN_BUDGET_MS);
    // One event for the change, on each transport.
    for (const sub of subs) expect(statusChangesOf(sub.received, idOf(victim)).filter((e) => e.status === 'DOWN')).toHaveLength(1);

    const { datanodes: listed, cluster } = await datanodesNow();
    expect(listed.find((d) => d.id === idOf(victim))!.status).toBe('DOWN');
    for (const d of alive) expect(LIVE).toContain(listed.find((n) => n.id === idOf(d))!.status);
    expect(cluster.liveDatanodeCount).toBe(2);
  });

  it('an upload then places every replica on live datanodes only', async () => {
    const victim = idOf(datanodes[0]);
    const live = new Set(datanodes.slice(1).map(idOf));
    const bytes = randomBytes(3 * FRAGMENT + 1000);
    const name = 'after-the-crash.png';
    const { beginUpload: session } = await gql(`mutation($i: BeginUploadInput!){ beginUpload(input: $i){ id fragmentCount } }`, {
      i: { name, size: bytes.length, contentType: 'image/png' },
    });
    expect(session.fragmentCount).toBe(4);
    for (let i = 0; i < session.fragmentCount; i++) {
      const { uploadFragment: receipt } = await gql(
        `mutation($u: ID!, $i: Int!, $d: Base64){ uploadFragment(uploadId: $u, index: $i, data: $d){ index replicas { id status } } }`,
        {
          u: session.id,
          i,
          d: bytes.subarray(i * FRAGMENT, (i + 1) * FRAGMENT).toString('base64'),
        },
      );
      const replicas = (receipt.replicas as { id: string; status: string }[]).map((r) => r.id);
      expect(new Set(replicas)).toEqual(live); // RF 2 on the 2 live datanodes, never the DOWN one
      expect(replicas).not.toContain(victim);
    }
    const { completeUpload: image } = await gql(
      `mutation($u: ID!){ completeUpload(uploadId: $u){ name sha256 fragments { replicas { id } } } }`,
      { u: session.id },
    );
    expect(image.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    for (const f of image.fragments as { replicas: { id: string }[] }[]) expect(f.replicas.every((r) => live.has(r.id))).toBe(true);
    storedImage = { name, bytes };
  });

  it('with 1 live datanode and replication factor 2, uploads answer INSUFFICIENT_DATANODES and store nothing', async () => {
    await killAndAwaitDown(datanodes[1]);
    const { cluster } = await datanodesNow();
    expect(cluster.liveDatanodeCount).toBe(1);
    const LIST = `{ images { totalCount edges { node { name } } } cluster { imageCount } }`;
    const before = await gql(LIST);
    expect(before.images.edges.map((e: { node: { name: string } }) => e.node.name)).toEqual([storedImage!.name]);

    const begin = await gql.request(`mutation($i: BeginUploadInput!){ beginUpload(input: $i){ id } }`, {
      i: { name: 'refused.png', size: 1000 },
    });
    expect(codeOf(begin)).toBe('INSUFFICIENT_DATANODES');
    expect(begin.data).toBeNull();
    const whole = await gql.multipart(
      `mutation($f: File!){ uploadImage(name: "refused-too.png", file: $f){ name } }`,
      { f: null },
      { 'variables.f': { data: randomBytes(5000) } },
    );
    expect(codeOf(whole)).toBe('INSUFFICIENT_DATANODES');

    expect(await gql(LIST)).toEqual(before);
    expect(await gql(`{ image(name: "refused.png") { name } }`)).toEqual({ image: null });

    // Reads skip the DOWN datanodes: the image is served from the one that is left.
    const res = await fetch(`${coordinator.url}/images/${encodeURIComponent(storedImage!.name)}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(storedImage!.bytes)).toBe(true);
  });

  it('after a coordinator restart (kill -9) on the same data dir, datanodes shows the last stored samples', async () => {
    const before = (await datanodesNow()).datanodes;
    const [dead0, dead1, survivor] = datanodes.map(idOf);
    await Promise.all(subs.map((s) => s.close()));
    subs = [];
    coordinator.kill('SIGKILL');
    await coordinator.exited;

    await startCoordinator();
    const after = (await datanodesNow()).datanodes;
    expect(after.map((d) => d.id).sort()).toEqual(before.map((d) => d.id).sort());
    for (const id of [dead0, dead1]) {
      // Nothing can sample them any more: what shows is exactly what was stored, DOWN included.
      const was = before.find((d) => d.id === id)!;
      expect(was.lastSeenAt).not.toBeNull();
      expect(was.cpuPercent).not.toBeNull();
      expect(after.find((d) => d.id === id)).toEqual(was);
    }
    // The survivor shows a sample at once: the stored one or a newer one.
    const was = before.find((d) => d.id === survivor)!;
    const now = after.find((d) => d.id === survivor)!;
    expect(now.cpuPercent).not.toBeNull();
    expect(now.diskFreeBytes).toBeGreaterThan(0);
    expect(Date.parse(now.lastSeenAt!)).toBeGreaterThanOrEqual(Date.parse(was.lastSeenAt!));
    expect(LIVE).toContain(now.status);
  });
});
