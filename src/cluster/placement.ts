// Where a fragment's replicas go: weighted rendezvous hashing over the live datanodes, weighted
// by free disk, so storage stays balanced and a fragment's choice is stable across calls.
import { createHash } from 'node:crypto';
import type { DatanodeStatus } from '../metadata/datanodes.ts';
import { isLive } from './health-rules.ts';

export interface PlacementCandidate {
  id: string;
  status: DatanodeStatus | null;
  diskFreeBytes: number | null;
  draining: boolean;
}

/**
 * Whether a datanode may take a new replica: it is live (UP or DEGRADED; a datanode whose
 * identity is in doubt is DOWN) and not draining. The one rule behind placement, the uploads'
 * admission check and which replicas count when excess ones are trimmed.
 */
export const mayTakeReplica = (node: Pick<PlacementCandidate, 'status' | 'draining'>): boolean => isLive(node.status) && !node.draining;

/** A score in (0, 1) from the pair, stable across runs. */
function unitHash(key: string, nodeId: string): number {
  // One update of the joined text: the same digest as three updates, two native calls fewer per datanode and write.
  const h = createHash('sha256').update(`${key}\0${nodeId}`).digest();
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
export function placeReplicas(
  key: string,
  candidates: PlacementCandidate[],
  count: number,
  exclude: ReadonlySet<string> = new Set(),
): string[] {
  const eligible = candidates.filter((n) => mayTakeReplica(n) && !exclude.has(n.id));
  const ranked = (status: DatanodeStatus) =>
    eligible
      .filter((n) => n.status === status)
      .map((n) => ({ id: n.id, s: score(key, n) }))
      .sort((a, b) => b.s - a.s)
      .map((n) => n.id);
  return [...ranked('UP'), ...ranked('DEGRADED')].slice(0, count);
}
