// The contract's health rules as one pure function: DOWN after N failed samples in a row,
// DEGRADED at the CPU / memory / disk thresholds, UP otherwise.
import type { HealthThresholds } from '../config.ts';
import type { DatanodeHealthReport } from '../../datanode/protocol.ts';
import type { DatanodeStatus } from '../metadata/datanodes.ts';

export interface StatusInput {
  previous: DatanodeStatus | null;
  /** Failed samples in a row, this one included; 0 when this sample succeeded. */
  consecutiveFailures: number;
  sample?: DatanodeHealthReport;
  downAfterFailures: number;
  thresholds: HealthThresholds;
}

export function decideStatus({ previous, consecutiveFailures, sample, downAfterFailures, thresholds }: StatusInput): DatanodeStatus | null {
  if (!sample) return consecutiveFailures >= downAfterFailures ? 'DOWN' : previous;
  const degraded =
    sample.cpuPercent >= thresholds.cpuPercent ||
    sample.memoryPercent >= thresholds.memoryPercent ||
    sample.diskPercent >= thresholds.diskPercent;
  return degraded ? 'DEGRADED' : 'UP';
}

export const isLive = (status: DatanodeStatus | null) => status === 'UP' || status === 'DEGRADED';
