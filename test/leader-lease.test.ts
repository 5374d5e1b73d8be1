// The lease rule on a fake clock: a holder believes it leads only until (time its renewal was
// sent + ttl − margin), which always ends before the row expires in the store, so a paused or
// cut-off leader stops before anyone else can take over; a dead one is replaced within
// takeoverBoundMs; the token grows at each change of holder. The store here is an in-memory
// model of the one conditional UPDATE (test/leader-lease-postgres.test.ts runs the real one).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLeaderLease, safetyMargin, takeoverBoundMs, type LeaseStore } from '../src/cluster/leader-lease.ts';

/** The lease row, in the store's clock (the fake clock), with a per-holder network: delay, or cut. */
function fakeStore() {
  const row = { holder: '', token: 0, expiresAt: -Infinity };
  const net = new Map<string, { delayMs: number; cut: boolean }>();
  const link = (h: string) => net.get(h) ?? { delayMs: 5, cut: false };
  const hang = () => new Promise<never>(() => {});
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const store = (holder: string): LeaseStore => ({
    async acquire(h, ttlMs) {
      const { delayMs, cut } = link(holder);
      if (cut) return hang();
      await sleep(delayMs); // the request's way there
      const now = Date.now();
      let token: string | undefined;
      if (row.holder === h || row.expiresAt <= now) {
        if (row.holder !== h) row.token += 1;
        row.holder = h;
        row.expiresAt = now + ttlMs;
        token = String(row.token);
      }
      if (link(holder).cut) return hang(); // cut while the answer travels back
      await sleep(delayMs);
      return token;
    },
    async release(h) {
      if (row.holder === h) row.expiresAt = -Infinity;
    },
  });
  return { row, net, store };
}

const ttlMs = 10_000;

describe('the leader lease (fake clock)', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  function twoCoordinators() {
    const s = fakeStore();
    const events: string[] = [];
    const make = (holder: string) =>
      createLeaderLease({
        store: s.store(holder),
        holder,
        ttlMs,
        now: () => Date.now(),
        onAcquired: (t) => events.push(`${holder} acquired ${t}`),
        onLost: (why) => events.push(`${holder} lost: ${why}`),
      });
    return { ...s, events, a: make('a'), b: make('b') };
  }

  /** Steps the clock in small steps, checking the invariant at each: never two leaders. */
  async function run(ms: number, leases: Array<{ isLeader(): boolean }>, step = 50) {
    for (let t = 0; t < ms; t += step) {
      await vi.advanceTimersByTimeAsync(step);
      expect(leases.filter((l) => l.isLeader()).length).toBeLessThanOrEqual(1);
    }
  }

  it('the first to ask leads with token 1 and keeps it by renewing every ttl/3; the other waits', async () => {
    const { a, b, row, events } = twoCoordinators();
    a.start();
    await vi.advanceTimersByTimeAsync(20);
    b.start();
    await run(60_000, [a, b]);
    expect(a.isLeader()).toBe(true);
    expect(a.token()).toBe('1');
    expect(b.isLeader()).toBe(false);
    expect(b.token()).toBeUndefined();
    expect(row.holder).toBe('a');
    expect(events).toEqual(['a acquired 1']);
    await a.stop();
    await b.stop();
  });

  it('a leader cut off from the store stops believing before its row expires, and the other takes over with token 2 within the bound', async () => {
    const { a, b, row, net, events } = twoCoordinators();
    a.start();
    await vi.advanceTimersByTimeAsync(20);
    b.start();
    await run(5_000, [a, b]);
    net.set('a', { delayMs: 5, cut: true });
    const cutAt = Date.now();
    let aStoppedAt: number | undefined;
    let bLeadAt: number | undefined;
    while (bLeadAt === undefined && Date.now() - cutAt < 3 * ttlMs) {
      await run(10, [a, b], 10);
      if (aStoppedAt === undefined && !a.isLeader()) aStoppedAt = Date.now();
      if (b.isLeader()) bLeadAt = Date.now();
    }
    expect(aStoppedAt).toBeDefined();
    expect(bLeadAt).toBeDefined();
    // a stopped at least the margin before anyone could take over
    expect(bLeadAt! - aStoppedAt!).toBeGreaterThanOrEqual(safetyMargin(ttlMs));
    expect(bLeadAt! - cutAt).toBeLessThanOrEqual(takeoverBoundMs(ttlMs) + 100);
    expect(row).toMatchObject({ holder: 'b', token: 2 });
    expect(b.token()).toBe('2');
    expect(events).toEqual(['a acquired 1', 'a lost: the lease was not renewed in time', 'b acquired 2']);

    // Back on the network, the former leader learns it lost and does not lead again.
    net.set('a', { delayMs: 5, cut: false });
    await run(ttlMs, [a, b]);
    expect(a.isLeader()).toBe(false);
    expect(b.isLeader()).toBe(true);
    await a.stop();
    await b.stop();
  });

  it('an answer that arrives after the time it could grant counts for nothing', async () => {
    const { a, b, net } = twoCoordinators();
    // The round trip takes longer than ttl − margin (but less than the ttl): the grant, counted
    // from the send, has run out when the answer arrives.
    net.set('a', { delayMs: (ttlMs - safetyMargin(ttlMs)) / 2 + 100, cut: false });
    a.start();
    await run(3 * ttlMs, [a]);
    expect(a.isLeader()).toBe(false);
    // The row says a holds it (the store ran the UPDATE): b must still wait for the expiry.
    net.set('a', { delayMs: 5, cut: true });
    b.start();
    await run(takeoverBoundMs(ttlMs) + 100, [a, b]);
    expect(b.isLeader()).toBe(true);
    const stopping = a.stop();
    await vi.advanceTimersByTimeAsync(ttlMs);
    await stopping;
    await b.stop();
  });

  it('a clean stop releases the lease: the other leads at its next attempt, well before the ttl', async () => {
    const { a, b, events } = twoCoordinators();
    a.start();
    await vi.advanceTimersByTimeAsync(20);
    b.start();
    await run(5_000, [a, b]);
    const stopAt = Date.now();
    await a.stop();
    while (!b.isLeader()) await run(10, [a, b], 10);
    expect(Date.now() - stopAt).toBeLessThanOrEqual(Math.ceil(ttlMs / 3) + 100);
    expect(events).toEqual(['a acquired 1', 'a lost: stopping', 'b acquired 2']);
    await b.stop();
  });

  it('a paused leader (no timer of it ran) knows on waking that it no longer leads, before anything else runs', async () => {
    const { a, b } = twoCoordinators();
    a.start();
    await vi.advanceTimersByTimeAsync(20);
    b.start();
    await run(5_000, [a, b]);
    expect(a.isLeader()).toBe(true);
    // The clock moves on while none of a's timers fire: a process stopped by SIGSTOP or a long GC.
    vi.setSystemTime(Date.now() + ttlMs - safetyMargin(ttlMs));
    expect(a.isLeader()).toBe(false);
    expect(a.token()).toBeUndefined();
    await run(ttlMs, [a, b]);
    await a.stop();
    await b.stop();
  });
});
