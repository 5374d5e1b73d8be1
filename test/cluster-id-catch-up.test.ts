// A coordinator that does not know the cluster id yet (a follower on PostgreSQL whose catch-up
// has not run, or a lone coordinator no datanode answered) does not send writes every datanode
// refuses (409 CLUSTER_ID_REQUIRED, ending as a misleading INSUFFICIENT_DATANODES): a write
// reads the shared row first and adopts the id there, else fails fast with CLUSTER_NOT_READY;
// the catch-up retries a failed read by itself. Fakes for the row, the datanodes and the events.
import { afterEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { createClusterIdentity } from '../src/cluster/cluster-identity.ts';
import { createReplicas } from '../src/cluster/replicas.ts';
import { linkCoordinators } from '../src/coordinator-links.ts';
import { sha256Hex } from '../src/bytes.ts';
import type { TesseraError } from '../src/errors.ts';

const log = pino({ level: 'silent' });

/** The shared row: empty until another coordinator (the leader) stores an id. */
function fakeRow() {
  const row = {
    id: undefined as string | undefined,
    loads: 0,
    load: async () => {
      row.loads += 1;
      return row.id;
    },
    save: async () => {},
  };
  return row;
}

function follower() {
  const row = fakeRow();
  const identity = createClusterIdentity({ row: row as never, initial: undefined, log, mayMint: () => false });
  const puts: string[] = [];
  const intents: string[] = [];
  const nodes = ['a', 'b'].map((id) => ({ id, url: `http://${id}`, status: 'UP', draining: false, freeBytes: 1e9, capacityBytes: 1e9 }));
  const replicas = createReplicas({
    catalog: {
      addWriteIntents: async (_f: string, targets: string[]) => void intents.push(...targets),
      releaseWriteIntents: async () => {},
    } as never,
    registry: { all: () => nodes, get: (id: string) => nodes.find((n) => n.id === id), isLive: () => true } as never,
    client: { putFragment: async (url: string) => void puts.push(url) } as never,
    log,
    clusterIdentity: identity,
  });
  return { row, identity, replicas, puts, intents };
}

const data = Buffer.from('fragment bytes');
const digest = sha256Hex([data]);
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err as TesseraError,
  );

describe('writes without a cluster id', () => {
  it('fail fast with CLUSTER_NOT_READY (503, Retry-After) when the shared row has none either: nothing is sent', async () => {
    const { identity, replicas, puts, intents } = follower();
    const err = await failure(replicas.write('f1', data, digest, 2));
    expect(err?.code).toBe('CLUSTER_NOT_READY');
    expect(err?.status).toBe(503);
    expect((err?.extensions.http as { headers: Record<string, string> }).headers['retry-after']).toBe('2');
    expect((await failure(replicas.place('f1', 2)))?.code).toBe('CLUSTER_NOT_READY');
    expect(puts).toEqual([]);
    expect(intents).toEqual([]);
    expect(identity.current()).toBeUndefined();
  });

  it('adopt the id another coordinator stored, read once for concurrent writes, then write', async () => {
    const { row, identity, replicas, puts } = follower();
    row.id = 'cluster-1'; // the leader minted it; this coordinator heard nothing yet
    const written = await Promise.all([replicas.write('f1', data, digest, 2), replicas.write('f2', data, digest, 2)]);
    expect(written.map((w) => w.length)).toEqual([2, 2]);
    expect(identity.current()).toBe('cluster-1');
    expect(row.loads).toBe(1);
    expect(puts).toHaveLength(4);
    await replicas.write('f3', data, digest, 2);
    expect(row.loads).toBe(1); // known: never read again
  });
});

describe('the catch-up of a follower', () => {
  afterEach(() => void vi.useRealTimers());

  it('retries a failed read of the cluster id by itself, not only at the next event', async () => {
    vi.useFakeTimers();
    const heard: ((message: unknown) => void)[] = [];
    const events = { relayed: true, onRemote: (f: (m: unknown) => void) => heard.push(f), onRestored: () => {}, tellOthers: () => {} };
    let known: string | undefined;
    const reads = { count: 0 };
    const refreshClusterId = vi.fn(async () => {
      reads.count += 1;
      if (reads.count === 1) throw new Error('METADATA_UNAVAILABLE (fake stall)');
      return (known = 'cluster-1');
    });
    const links = linkCoordinators({
      events: events as never,
      registry: { all: () => [], reload: () => [] } as never,
      readRows: async () => [],
      isLeader: () => false,
      abandon: () => {},
      sampleNow: async () => {},
      revokedElsewhere: () => {},
      refreshClusterId,
      repair: () => {},
      log,
    });
    // Another coordinator says something: the read fails (the database stalled).
    for (const f of heard) f({ topic: 'coordinatorNotice', notice: { kind: 'tokenRevoked', id: 't' } });
    await vi.advanceTimersByTimeAsync(0);
    expect(reads.count).toBe(1);
    expect(known).toBeUndefined();
    // Nothing else is said: the catch-up tries again by itself.
    await vi.advanceTimersByTimeAsync(1000);
    expect(reads.count).toBe(2);
    expect(known).toBe('cluster-1');
    await links.stop();
  });
});
