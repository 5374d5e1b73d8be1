// Unit tests of replica placement (weighted rendezvous hashing): which datanodes may take a
// replica (mayTakeReplica), distinct datanodes, UP before DEGRADED, an even spread, weighting by
// free disk, stability.
import { describe, expect, it } from 'vitest';
import { mayTakeReplica, placeReplicas, type PlacementCandidate } from '../src/cluster/placement.ts';

const node = (id: string, over: Partial<PlacementCandidate> = {}): PlacementCandidate => ({
  id,
  status: 'UP',
  diskFreeBytes: 100e9,
  draining: false,
  ...over,
});
const keys = (n: number, tag = 'frag') => Array.from({ length: n }, (_, i) => `${tag}-${i}`);

/** Share of all replicas each node got over `keyCount` keys. */
function shares(candidates: PlacementCandidate[], count: number, keyCount: number): Map<string, number> {
  const got = new Map<string, number>(candidates.map((c) => [c.id, 0]));
  for (const key of keys(keyCount)) for (const id of placeReplicas(key, candidates, count)) got.set(id, got.get(id)! + 1);
  const total = keyCount * count;
  return new Map([...got].map(([id, n]) => [id, n / total]));
}

describe('mayTakeReplica', () => {
  it('takes UP and DEGRADED datanodes that are not draining, and nothing else', () => {
    const cases: [Partial<PlacementCandidate>, boolean][] = [
      [{ status: 'UP' }, true],
      [{ status: 'DEGRADED' }, true],
      [{ status: 'DOWN' }, false],
      [{ status: null }, false],
      [{ status: 'UP', draining: true }, false],
      [{ status: 'DEGRADED', draining: true }, false],
      [{ status: 'DOWN', draining: true }, false],
    ];
    for (const [over, expected] of cases) expect(mayTakeReplica(node('n', over)), JSON.stringify(over)).toBe(expected);
  });

  it('is the rule placement follows: asked for more than exist, placement answers exactly the eligible ones', () => {
    const statuses = ['UP', 'DEGRADED', 'DOWN', null] as const;
    const nodes = statuses.flatMap((status) => [false, true].map((draining) => node(`${status}-${draining}`, { status, draining })));
    const eligible = nodes
      .filter(mayTakeReplica)
      .map((n) => n.id)
      .sort();
    expect(eligible).toEqual(['DEGRADED-false', 'UP-false']);
    for (const key of keys(50)) expect([...placeReplicas(key, nodes, nodes.length)].sort()).toEqual(eligible);
  });
});

describe('placeReplicas', () => {
  it('never puts two replicas of a fragment on one datanode', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'].map((id) => node(id));
    for (const key of keys(500)) {
      for (const count of [1, 2, 3, 5]) {
        const placed = placeReplicas(key, nodes, count);
        expect(placed).toHaveLength(count);
        expect(new Set(placed).size).toBe(count);
      }
    }
  });

  it('gives no more datanodes than there are, each once', () => {
    const placed = placeReplicas('k', [node('a'), node('b')], 5);
    expect([...placed].sort()).toEqual(['a', 'b']);
  });

  it('skips DOWN, unknown (no sample yet), draining and excluded datanodes', () => {
    const nodes = [
      node('up1'),
      node('down', { status: 'DOWN' }),
      node('unknown', { status: null }),
      node('draining', { draining: true }),
      node('draining-degraded', { status: 'DEGRADED', draining: true }),
      node('up2'),
      node('excluded'),
    ];
    for (const key of keys(300)) {
      const placed = placeReplicas(key, nodes, 3, new Set(['excluded']));
      expect([...placed].sort()).toEqual(['up1', 'up2']);
    }
  });

  it('answers nothing when no datanode is live', () => {
    expect(placeReplicas('k', [node('a', { status: 'DOWN' }), node('b', { status: null })], 2)).toEqual([]);
  });

  it('prefers UP datanodes over DEGRADED ones, and uses DEGRADED ones only to make up the count', () => {
    const nodes = [node('d1', { status: 'DEGRADED' }), node('u1'), node('d2', { status: 'DEGRADED', diskFreeBytes: 1e15 }), node('u2')];
    for (const key of keys(300)) {
      expect([...placeReplicas(key, nodes, 2)].sort()).toEqual(['u1', 'u2']);
      const three = placeReplicas(key, nodes, 3);
      expect([...three.slice(0, 2)].sort()).toEqual(['u1', 'u2']);
      expect(['d1', 'd2']).toContain(three[2]);
    }
    const onlyDegraded = placeReplicas('k', [node('d1', { status: 'DEGRADED' }), node('d2', { status: 'DEGRADED' })], 2);
    expect([...onlyDegraded].sort()).toEqual(['d1', 'd2']);
  });

  it('spreads replicas roughly evenly over 3 equal datanodes', () => {
    const nodes = ['a', 'b', 'c'].map((id) => node(id));
    for (const share of shares(nodes, 2, 3000).values()) {
      expect(share).toBeGreaterThan(0.25);
      expect(share).toBeLessThan(0.42);
    }
    for (const share of shares(nodes, 1, 3000).values()) {
      expect(share).toBeGreaterThan(0.25);
      expect(share).toBeLessThan(0.42);
    }
  });

  it('weights by free disk space: three times the space, about three times the fragments', () => {
    const nodes = [
      node('big', { diskFreeBytes: 300e9 }),
      node('small1', { diskFreeBytes: 100e9 }),
      node('small2', { diskFreeBytes: 100e9 }),
    ];
    const s = shares(nodes, 1, 3000);
    // Weights 3:1:1 → 60% / 20% / 20%.
    expect(s.get('big')).toBeGreaterThan(0.52);
    expect(s.get('big')).toBeLessThan(0.68);
    expect(s.get('small1')).toBeGreaterThan(0.13);
    expect(s.get('small2')).toBeGreaterThan(0.13);
    // With 2 replicas the big node is in most pairs, but never twice in one.
    const pairs = shares(nodes, 2, 3000);
    expect(pairs.get('big')).toBeGreaterThan(pairs.get('small1')!);
    expect(pairs.get('big')).toBeGreaterThan(pairs.get('small2')!);
  });

  it('nearly starves a datanode with almost no free space', () => {
    const nodes = [node('a'), node('b'), node('full', { diskFreeBytes: 1e6 })];
    expect(shares(nodes, 1, 3000).get('full')).toBeLessThan(0.01);
  });

  it('is stable: the same key over the same datanodes gives the same answer, whatever their order', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id));
    for (const key of keys(100)) {
      const placed = placeReplicas(key, nodes, 2);
      expect(placeReplicas(key, [...nodes].reverse(), 2)).toEqual(placed);
    }
  });

  it('moves only the fragments of a datanode that leaves', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id));
    const withoutD = nodes.filter((n) => n.id !== 'd');
    for (const key of keys(300)) {
      const before = placeReplicas(key, nodes, 1)[0];
      if (before !== 'd') expect(placeReplicas(key, withoutD, 1)[0]).toBe(before);
    }
  });
});
