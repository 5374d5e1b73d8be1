// What the datanode's route handlers share.
import type { Logger } from 'pino';
import type { HealthSampler } from './health.ts';
import type { RecordStore } from './records.ts';
import type { FragmentStore } from './store.ts';
import type { CallerGate } from './caller-gate.ts';

export interface DatanodeContext {
  store: FragmentStore;
  records: RecordStore;
  health: HealthSampler;
  gate: CallerGate;
  logger: Logger;
  maxFragmentBytes: number;
}
