// Where a fragment's replicas go: weighted rendezvous hashing over the live datanodes, weighted
// by free disk, so storage stays balanced and a fragment's choice is stable across calls.
import { createHash } from 'node:crypto';
import type { DatanodeStatus } from '../metadata/datanodes.ts';

export interface PlacementCandidate {
  id: string;
  status: DatanodeStatus | null;
  diskFreeBytes: number | null;
  draining: boolean;
}

/** A score in (0, 1) from the pair, stable across runs. */
function unitHash(key: string, nodeId: string): number {
  const h = createHash('sha256').update(key).update('\0').update(nodeId).digest();
  // 52 random bits → (0, 1): never exactly 0 or 1, so the log below is finite.
  const n = h.readUIntBE(0, 6) * 2 ** -48 + h.readUInt8(6) * 2 ** -56;
  return Math.min(Math.max(n, Number.EPSILON), 1 - Number.EPSILON);
}

/** Weighted rendezvous score: a node with twice the free space wins twice as often. */
const score = (key: string, node: PlacementCandidate) => {
  const weight = Math.max(node.diskFreeBytes ?? 1, 1);
  return -weight / Math.log(unitHash(key, node.id));
};

/**
 * Up to `count` distinct datanodes for fragment `key`: UP ones first, DEGRADED ones only when
 * there are too few UP, never DOWN, unknown, draining or `exclude`d ones.
 */
export function placeReplicas(key: string, candidates: PlacementCandidate[], count: number, exclude: ReadonlySet<string> = new Set()): string[] {
  const ranked = (status: DatanodeStatus) =>
    candidates
      .filter((n) => n.status === status && !n.draining && !exclude.has(n.id))
      .map((n) => ({ id: n.id, s: score(key, n) }))
      .sort((a, b) => b.s - a.s)
      .map((n) => n.id);
  return [...ranked('UP'), ...ranked('DEGRADED')].slice(0, count);
}
