// Live cluster events and health samples as subscriptions (served over SSE and graphql-ws).
import { filter, pipe } from 'graphql-yoga';
import { builder } from './builder.ts';
import { DatanodeRef, DatanodeStatusEnum } from './datanodes.ts';
import type { ClusterEvent, ClusterEventKind, HealthSample } from '../events.ts';

type Of<K extends ClusterEventKind> = Extract<ClusterEvent, { kind: K }>;

const ClusterEventRef = builder.interfaceRef<ClusterEvent>('ClusterEvent').implement({
  resolveType: (event) => event.kind,
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (e) => e.at }),
    message: t.string({ description: 'One line a person can read.', resolve: (e) => e.message }),
  }),
});

// Each event's GraphQL type is named after its `kind`, which is how resolveType finds it.
const eventRef = <K extends ClusterEventKind>(kind: K) => builder.objectRef<Of<K>>(kind);
const interfaces = [ClusterEventRef];

eventRef('DatanodeStatusChanged').implement({
  description: 'A datanode changed status (also its first status after it registers).',
  interfaces,
  fields: (t) => ({
    datanode: t.field({ type: DatanodeRef, resolve: (e) => e.datanode }),
    previous: t.field({ type: DatanodeStatusEnum, nullable: true, resolve: (e) => e.previous }),
    status: t.field({ type: DatanodeStatusEnum, resolve: (e) => e.status }),
  }),
});
eventRef('ImageStored').implement({
  description: 'An upload completed: the image is visible.',
  interfaces,
  fields: (t) => ({ name: t.exposeString('name'), size: t.expose('size', { type: 'SafeInt' }) }),
});
eventRef('ImageDeleted').implement({
  description: 'An image left the index; its replicas are being deleted.',
  interfaces,
  fields: (t) => ({ name: t.exposeString('name') }),
});
eventRef('UploadExpired').implement({
  description: 'An upload sat idle past the upload TTL and was dropped with its fragments.',
  interfaces,
  fields: (t) => ({ name: t.exposeString('name'), uploadId: t.exposeID('uploadId') }),
});
eventRef('ReplicaFault').implement({
  description: 'A replica could not serve a verified copy (missing, corrupt, unreadable or unreachable).',
  interfaces,
  fields: (t) => ({
    fragmentId: t.exposeString('fragmentId'),
    datanode: t.field({ type: DatanodeRef, resolve: (e) => e.datanode }),
    reason: t.exposeString('reason'),
  }),
});
eventRef('ReplicaRepaired').implement({
  description: 'A fragment got a new verified replica (repair or re-replication).',
  interfaces,
  fields: (t) => ({
    fragmentId: t.exposeString('fragmentId'),
    datanode: t.field({ type: DatanodeRef, resolve: (e) => e.datanode }),
    reason: t.exposeString('reason'),
  }),
});

const DatanodeHealthRef = builder.objectRef<HealthSample>('DatanodeHealth').implement({
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (s) => s.at }),
    datanode: t.field({ type: DatanodeRef, resolve: (s) => s.datanode }),
    status: t.field({ type: DatanodeStatusEnum, resolve: (s) => s.status }),
    cpuPercent: t.exposeFloat('cpuPercent', { nullable: true }),
    memoryPercent: t.exposeFloat('memoryPercent', { nullable: true }),
    diskPercent: t.exposeFloat('diskPercent', { nullable: true }),
  }),
});

builder.subscriptionFields((t) => ({
  clusterEvents: t.field({
    description: 'Everything that happens in the cluster, as it happens.',
    type: ClusterEventRef,
    subscribe: (_root, _args, ctx) => ctx.app.events.clusterEvents(),
    resolve: (event) => event,
  }),
  datanodeHealth: t.field({
    description: 'A health sample of each datanode at every monitor round; only one datanode when id is given.',
    type: DatanodeHealthRef,
    args: { id: t.arg.id() },
    subscribe: (_root, { id }, ctx) => {
      const samples = ctx.app.events.healthSamples();
      // Yoga's filter ends the bus subscription as soon as the client leaves (a hand-written
      // async generator would wait for the next matching sample, which may never come).
      return id == null ? samples : pipe(samples, filter((s: HealthSample) => s.datanode.id === String(id)));
    },
    resolve: (sample) => sample,
  }),
}));
