// The typed event bus behind the subscriptions: cluster events (status changes, images stored
// and deleted, expiry, repair) and every health sample, published by the services. The pub/sub
// is the framework-free package Yoga itself uses, not the HTTP server: a subscriber that leaves
// ends its bus subscription at once (no waiting for the next event). With several coordinators
// on PostgreSQL its event target is the database (events-relay.ts): every coordinator's
// subscribers see every coordinator's events.
import { createPubSub, filter, pipe } from '@graphql-yoga/subscription';
import type { DatanodeStatus } from './metadata/datanodes.ts';
import type { Logger } from 'pino';
import type { DatanodeView } from './cluster/registry.ts';
import type { BadReplica } from './cluster/replicas.ts';
import type { Outbox } from './metadata/outbox.ts';
import { createRelayTarget, encode, EVENT_CHANNEL, type Envelope, type NotifyTransport } from './events-relay.ts';

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

/**
 * What coordinators tell each other beyond the public events (never shown to subscribers): a
 * datanode row changed (registered, moved, drained, removed), a token was revoked, a replica
 * is bad.
 */
export type CoordinatorNotice =
  | { kind: 'datanodeChanged'; id: string }
  | { kind: 'tokenRevoked'; id: string }
  /** A bad replica found by a read on a coordinator that does not repair (the leader does). */
  | { kind: 'badReplica'; bad: BadReplica };
const NOTICE_TOPIC = 'coordinatorNotice';

/** A message from another coordinator: a public event, a health sample, or a notice. */
export type RemoteMessage =
  | { topic: 'clusterEvent'; event: ClusterEvent }
  | { topic: 'datanodeHealth'; sample: HealthSample }
  | { topic: 'coordinatorNotice'; notice: CoordinatorNotice };

const LOCAL_EVENT = Symbol('event');
/** A cluster event to send with the metadata change it reports (metadata/outbox.ts). */
export type EventNotice = Outbox & { readonly [LOCAL_EVENT]: ClusterEvent };

export interface EventBusOptions {
  /**
   * Several coordinators on one database: events go through the database (NOTIFY) and arrive on
   * every coordinator (LISTEN), this one's own included. Without it: in-process, as on SQLite.
   */
  relay?: { transport: NotifyTransport; origin: string; log?: Logger };
}

export function createEventBus({ relay: relayOptions }: EventBusOptions = {}) {
  const remoteHandlers: ((message: RemoteMessage) => void)[] = [];
  const restoredHandlers: (() => void)[] = [];
  const log = relayOptions?.log;
  const relay =
    relayOptions &&
    createRelayTarget(relayOptions.transport, relayOptions.origin, {
      fromOthers: (envelope) => {
        const message = remoteMessage(envelope);
        if (!message) return;
        for (const handle of remoteHandlers) {
          try {
            handle(message);
          } catch (err) {
            log?.error({ err: (err as Error).message, topic: envelope.t }, 'handling a message from another coordinator failed');
          }
        }
      },
      restored: () => {
        log?.info('event channel listening again');
        for (const handle of restoredHandlers) handle();
      },
      warn: (message, details) => log?.warn(details, message),
    });
  const pubsub = createPubSub<Topics>(relay ? { eventTarget: relay.target } : undefined);
  const stamp = (event: DistributiveOmit<ClusterEvent, 'at'>) => ({ ...event, at: new Date() }) as ClusterEvent;

  return {
    /** True when events travel between coordinators (PostgreSQL). */
    relayed: relay !== undefined,
    /** `event` without `at`: stamped now. */
    emit(event: DistributiveOmit<ClusterEvent, 'at'>) {
      pubsub.publish('clusterEvent', stamp(event));
    },
    /**
     * The outbox of a metadata change: pass it to the change, then `committed` once it is
     * committed (a change that did not happen announces nothing).
     */
    notice(event: DistributiveOmit<ClusterEvent, 'at'>): EventNotice {
      const stamped = stamp(event);
      if (relay) return { channel: EVENT_CHANNEL, payload: relay.payloadOf('clusterEvent', stamped), [LOCAL_EVENT]: stamped };
      // In-process: the JSON is made only if an engine asks for it (none does on SQLite).
      return {
        channel: EVENT_CHANNEL,
        get payload() {
          return encode({ t: 'clusterEvent', o: '', d: stamped });
        },
        [LOCAL_EVENT]: stamped,
      };
    },
    /** After the change carrying `notice` committed: published here unless its transaction sent it. */
    committed(notice: EventNotice): void {
      if (!notice.sent) pubsub.publish('clusterEvent', notice[LOCAL_EVENT]);
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

    /** Tells the other coordinators (nothing to do with one coordinator alone). */
    tellOthers(notice: CoordinatorNotice): void {
      void relay?.send(NOTICE_TOPIC, notice);
    },
    /** Runs `handle` for each message another coordinator sends (never for this one's own). */
    onRemote(handle: (message: RemoteMessage) => void): void {
      remoteHandlers.push(handle);
    },
    /** Runs `handle` when the event channel is back after a lost connection (messages meanwhile were missed). */
    onRestored(handle: () => void): void {
      restoredHandlers.push(handle);
    },
    /** Starts receiving from the other coordinators: resolves once listening. */
    start: async (): Promise<void> => relay?.start(),
    /** Sends what is still queued, then stops listening and ends the transport's connections. */
    async close(): Promise<void> {
      await relay?.close();
      await relayOptions?.transport.close?.();
    },
  };
}

function remoteMessage({ t, d }: Envelope): RemoteMessage | undefined {
  if (t === 'clusterEvent') return { topic: t, event: d as ClusterEvent };
  if (t === 'datanodeHealth') return { topic: t, sample: d as HealthSample };
  if (t === NOTICE_TOPIC) return { topic: t, notice: d as CoordinatorNotice };
  return undefined;
}

export type EventBus = ReturnType<typeof createEventBus>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
