// The replica write/read hedge (src/cluster/replicas.ts) with fake datanode clients and a fake
// catalog: which copies are recorded, when the intents of late copies are released, and when a
// datanode is taken for unreachable. No datanode process is needed: the fakes decide when each
// datanode answers, so the order of events is exact (test/hosts-partition.test.ts covers the
// real network case).
import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { createReplicas } from '../src/cluster/replicas.ts';
import { createReachability } from '../src/cluster/reachability.ts';
import { sha256Hex } from '../src/bytes.ts';

const ids = ['a', 'b', 'c', 'd', 'e'];
const fakeRegistry = (n: number) => {
  const nodes = ids
    .slice(0, n)
    .map((id) => ({ id, url: `http://${id}`, status: 'UP', draining: false, freeBytes: 1e9, capacityBytes: 1e9, usedBytes: 0 }));
  return { all: () => nodes, get: (id: string) => nodes.find((x) => x.id === id), isLive: () => true };
};

/** PUTs that answer only when the test lands them (from the `autoLandFrom`th one on: at once). */
function heldPuts(autoLandFrom = Infinity) {
  const held = new Map<string, () => void>();
  const events: string[] = [];
  const client = {
    putFragment: (url: string) =>
      new Promise<void>((resolve) => {
        const id = url.slice('http://'.length);
        held.set(id, () => {
          events.push(`landed ${id}`);
          resolve();
        });
        if (held.size >= autoLandFrom) held.get(id)!();
      }),
  };
  const land = (id: string) => held.get(id)!();
  return { held, events, client, land };
}

function fakeCatalog(events: string[], { failAddOnCall = 0, failReleases = 0 } = {}) {
  let adds = 0;
  let releaseFailures = failReleases;
  const released: string[] = [];
  return {
    released,
    catalog: {
      async addWriteIntents(_f: string, targets: string[]) {
        events.push(`intent ${targets.join(',')}`);
        if (++adds === failAddOnCall) throw new Error('METADATA_UNAVAILABLE (fake)');
      },
      async releaseWriteIntents(_f: string, targets: string[]) {
        if (releaseFailures-- > 0) throw new Error('METADATA_UNAVAILABLE (fake)');
        for (const id of targets) events.push(`released ${id}`);
        released.push(...targets);
      },
    },
  };
}

const log = pino({ level: 'silent' });
const data = Buffer.from('fragment bytes');
const digest = sha256Hex([data]);

function setup(n: number, catalogOptions = {}, autoLandFrom?: number) {
  const puts = heldPuts(autoLandFrom);
  const { catalog, released } = fakeCatalog(puts.events, catalogOptions);
  const reachability = createReachability();
  const replicas = createReplicas({
    catalog: catalog as never,
    registry: fakeRegistry(n) as never,
    client: puts.client as never,
    log,
    reachability,
    writeHedgeAfterMs: () => 20,
  });
  return { ...puts, released, reachability, replicas };
}

/** `late` was released, and only after it landed. */
function releasedAfterLanding(events: string[], id: string) {
  expect(events.indexOf(`released ${id}`)).toBeGreaterThan(events.indexOf(`landed ${id}`));
  expect(events.indexOf(`landed ${id}`)).toBeGreaterThanOrEqual(0);
}

describe('replica write hedge', () => {
  it('records exactly R copies when more late writes land, and waits for whichever lands first', async () => {
    const { held, events, land, released, reachability, replicas } = setup(5);
    const writing = replicas.write('f1', data, digest, 2);
    // Two rounds go unanswered (4 late writes); the fifth datanode alone cannot take both replicas.
    await vi.waitFor(() => expect(reachability.avoided().size).toBe(4), { timeout: 5000 });
    const [first, second, third, fourth] = [...held.keys()];
    // The last two land; the first two hang on: the write must not wait for them in order.
    land(fourth);
    land(third);
    const written = await writing;
    expect(written.sort()).toEqual([third, fourth].sort());
    expect(released).toEqual([]); // the two still in flight keep their intents...
    land(first);
    land(second);
    await vi.waitFor(() => expect(released.sort()).toEqual([first, second].sort()));
    releasedAfterLanding(events, first); // ...until they are over
    releasedAfterLanding(events, second);
  });

  it('takes only R copies when all late writes have landed by the time it waits', async () => {
    const { held, land, released, reachability, replicas } = setup(5);
    const writing = replicas.write('f2', data, digest, 2);
    await vi.waitFor(() => expect(reachability.avoided().size).toBe(4), { timeout: 5000 });
    for (const id of held.keys()) land(id);
    const written = await writing;
    expect(written).toHaveLength(2);
    const rest = [...held.keys()].filter((id) => !written.includes(id));
    await vi.waitFor(() => expect(released.sort()).toEqual(rest.sort()));
  });

  it('waits for late writes rather than open a round on datanodes it could not reach lately', async () => {
    const { held, land, reachability, replicas } = setup(3);
    reachability.unreachable('c');
    const writing = replicas.write('f7', data, digest, 1);
    // 'a' and 'b' go late in turn; only 'c' is left, and it did not answer lately either.
    await vi.waitFor(() => expect(reachability.avoided().size).toBe(3), { timeout: 5000 });
    const [first, second] = [...held.keys()];
    land(second);
    expect(await writing).toEqual([second]);
    expect([...held.keys()]).not.toContain('c');
    land(first);
  });

  it('on failure, releases the late copies only once they land (no orphan file)', async () => {
    // The second round's intents cannot be recorded: the write fails with round one still in flight.
    const { held, events, land, released, replicas } = setup(5, { failAddOnCall: 2 });
    await expect(replicas.write('f3', data, digest, 2)).rejects.toThrow(/METADATA_UNAVAILABLE/);
    const late = [...held.keys()];
    expect(late).toHaveLength(2);
    expect(released).toEqual([]);
    for (const id of late) land(id);
    await vi.waitFor(() => expect(released.sort()).toEqual(late.sort()));
    for (const id of late) releasedAfterLanding(events, id);
  });

  it('retries a release that failed (coordinator cut from its database) until it is taken', async () => {
    // The first write goes late; the second datanode answers at once.
    const { held, land, released, replicas } = setup(3, { failReleases: 2 }, 2);
    const written = await replicas.write('f4', data, digest, 1);
    const [slow, fast] = [...held.keys()];
    expect(written).toEqual([fast]);
    land(slow);
    await vi.waitFor(() => expect(released).toEqual([slow]), { timeout: 5000 });
  });
});

describe('replica read hedge', () => {
  it.each([
    ['its head at once', true],
    ['its whole answer late, no head signal', false],
  ])('does not leave a slow datanode that answered (%s) taken for unreachable, even when another replica wins', async (_, head) => {
    const reachability = createReachability();
    const over: Promise<unknown>[] = [];
    // 'a' answers slowly; 'b' answers at once.
    const answer = (url: string) => {
      const done = new Promise<Buffer[]>((resolve) => setTimeout(() => resolve([data]), url === 'http://a' ? 300 : 0));
      over.push(done);
      return done;
    };
    const client = head
      ? {
          getFragment: () => Promise.reject(new Error('unused')),
          getFragmentChunks(url: string, _id: string, onHead?: () => void) {
            onHead?.();
            return answer(url);
          },
        }
      : { getFragment: (url: string) => answer(url).then((chunks) => chunks[0]) };
    const replicas = readerOver(client, reachability);
    expect(await replicas.read({ id: 'f5', sha256: digest, replicas: ['a', 'b'] })).toEqual(data);
    expect(over).toHaveLength(2); // the hedge did ask 'b'
    // With its head in, 'a' answered before the hedge; without, it goes last for now...
    expect([...reachability.avoided()]).toEqual(head ? [] : ['a']);
    await Promise.all(over);
    expect([...reachability.avoided()]).toEqual([]); // ...until its late answer comes
  });

  it('takes a datanode with no answer at all by the hedge for unreachable', async () => {
    const reachability = createReachability();
    const client = {
      getFragment: () => Promise.reject(new Error('unused')),
      getFragmentChunks: (url: string) => (url === 'http://a' ? new Promise<never>(() => {}) : Promise.resolve([data])),
    };
    const replicas = readerOver(client, reachability);
    expect(await replicas.read({ id: 'f6', sha256: digest, replicas: ['a', 'b'] })).toEqual(data);
    expect([...reachability.avoided()]).toEqual(['a']);
  });
});

/** Replicas that only read (no catalog), over two fake datanodes, hedging after 20 ms. */
function readerOver(client: object, reachability: ReturnType<typeof createReachability>) {
  return createReplicas({
    catalog: {} as never,
    registry: fakeRegistry(2) as never,
    client: client as never,
    log,
    reachability,
    hedgeAfterMs: 20,
  });
}
