// The contract's health rules: DOWN after N failed samples in a row, DEGRADED at the CPU /
// memory / disk thresholds, UP otherwise (decideStatus, one sample's verdict), and the
// hysteresis that turns verdicts into status changes (settleStatus), so that a load hovering
// around a threshold does not flip a datanode back and forth.
import type { HealthThresholds } from '../config.ts';
import type { DatanodeHealthReport } from '../shared/datanode-api.ts';
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

/** The resources at or above their DEGRADED threshold in a sample ('cpu', 'memory', 'disk'). */
export function overThresholds(sample: DatanodeHealthReport, thresholds: HealthThresholds): string[] {
  return [
    ...(sample.cpuPercent >= thresholds.cpuPercent ? ['cpu'] : []),
    ...(sample.memoryPercent >= thresholds.memoryPercent ? ['memory'] : []),
    ...(sample.diskPercent >= thresholds.diskPercent ? ['disk'] : []),
  ];
}

/**
 * How a datanode moves between UP and DEGRADED (DOWN and the first status are not delayed):
 * - UP -> DEGRADED once `confirmSamples` samples in a row are over a threshold;
 * - DEGRADED -> UP once `confirmSamples` samples in a row are clear of every threshold by its
 *   margin (CPU below 80 - 10 = 70 %, memory below 85 %, disk below 93 % with the defaults).
 * With the defaults (2 s samples) a datanode changes status at most once while the load stays
 * on one side of the band, e.g. CPU anywhere from 70 to 100 % after it went DEGRADED.
 */
export interface Hysteresis {
  confirmSamples: number;
  margins: HealthThresholds;
}

export const DEFAULT_HYSTERESIS: Hysteresis = { confirmSamples: 3, margins: { cpuPercent: 10, memoryPercent: 5, diskPercent: 2 } };
/** Every verdict at once: the bare rules, as the contract states them. */
export const NO_HYSTERESIS: Hysteresis = { confirmSamples: 1, margins: { cpuPercent: 0, memoryPercent: 0, diskPercent: 0 } };

/** Per datanode: samples in a row whose verdict differs from the current status. */
export interface Streak {
  toward: DatanodeStatus | null;
  count: number;
}

/**
 * The status after one sample given the bare verdict: a change between UP and DEGRADED takes
 * effect only once confirmed (see Hysteresis); every other change (the first status, DOWN,
 * coming back from DOWN) at once. Returns the new status and streak.
 */
export function settleStatus(input: StatusInput & { streak: Streak; hysteresis: Hysteresis }): {
  status: DatanodeStatus | null;
  streak: Streak;
} {
  const { previous, sample, thresholds, streak, hysteresis } = input;
  const verdict = decideStatus(input);
  const between = (a: DatanodeStatus | null, b: DatanodeStatus | null) =>
    (a === 'UP' && b === 'DEGRADED') || (a === 'DEGRADED' && b === 'UP');
  if (!sample || !between(previous, verdict)) return { status: verdict, streak: { toward: null, count: 0 } };
  let wanted = verdict;
  if (previous === 'DEGRADED') {
    // Back to UP only when clear of every threshold by its margin.
    const exit = {
      cpuPercent: thresholds.cpuPercent - hysteresis.margins.cpuPercent,
      memoryPercent: thresholds.memoryPercent - hysteresis.margins.memoryPercent,
      diskPercent: thresholds.diskPercent - hysteresis.margins.diskPercent,
    };
    if (overThresholds(sample, exit).length > 0) wanted = 'DEGRADED';
  }
  if (wanted === previous) return { status: previous, streak: { toward: null, count: 0 } };
  const count = streak.toward === wanted ? streak.count + 1 : 1;
  if (count >= hysteresis.confirmSamples) return { status: wanted, streak: { toward: null, count: 0 } };
  return { status: previous, streak: { toward: wanted, count } };
}

export const isLive = (status: DatanodeStatus | null) => status === 'UP' || status === 'DEGRADED';
