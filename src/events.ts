// The typed event bus behind the subscriptions: cluster events (status changes, images stored
// and deleted, expiry, repair) and every health sample, published by the services. The pub/sub
// is the framework-free package Yoga itself uses, not the HTTP server: a subscriber that leaves
// ends its bus subscription at once (no waiting for the next event).
import { createPubSub, filter, pipe } from '@graphql-yoga/subscription';
import type { DatanodeStatus } from './metadata/datanodes.ts';
import type { DatanodeView } from './cluster/registry.ts';

interface EventBase {
  at: Date;
  message: string;
}

export type ClusterEvent =
  | (EventBase & { kind: 'DatanodeStatusChanged'; datanode: DatanodeView; previous: DatanodeStatus | null; status: DatanodeStatus })
  | (EventBase & { kind: 'ImageStored'; name: string; size: number })
  | (EventBase & { kind: 'ImageDeleted'; name: string })
  | (EventBase & { kind: 'UploadExpired'; name: string; uploadId: string })
  | (EventBase & { kind: 'ReplicaRepaired'; fragmentId: string; datanode: DatanodeView; reason: string })
  | (EventBase & { kind: 'ReplicaFault'; fragmentId: string; datanode: DatanodeView; reason: string });

export type ClusterEventKind = ClusterEvent['kind'];

export interface HealthSample {
  at: Date;
  datanode: DatanodeView;
  status: DatanodeStatus;
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
}

type Topics = {
  clusterEvent: [ClusterEvent];
  datanodeHealth: [HealthSample];
};

export function createEventBus() {
  const pubsub = createPubSub<Topics>();
  return {
    /** `event` without `at`: stamped now. */
    emit(event: DistributiveOmit<ClusterEvent, 'at'>) {
      pubsub.publish('clusterEvent', { ...event, at: new Date() } as ClusterEvent);
    },
    sample: (sample: HealthSample) => pubsub.publish('datanodeHealth', sample),
    clusterEvents: () => pubsub.subscribe('clusterEvent'),
    /** Every health sample, or only those of datanode `datanodeId`. */
    healthSamples: (datanodeId?: string) => {
      const samples = pubsub.subscribe('datanodeHealth');
      return datanodeId === undefined
        ? samples
        : pipe(
            samples,
            filter((s: HealthSample) => s.datanode.id === datanodeId),
          );
    },
  };
}

export type EventBus = ReturnType<typeof createEventBus>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
