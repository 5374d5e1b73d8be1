// Live cluster events and health samples as subscriptions (served over SSE and graphql-ws).
import { builder } from './builder.ts';
import { DatanodeRef, DatanodeStatusEnum } from './datanodes.ts';
import { TesseraError } from '../errors.ts';
import type { ClusterEvent, ClusterEventKind, HealthSample } from '../events.ts';

type Of<K extends ClusterEventKind> = Extract<ClusterEvent, { kind: K }>;

const ClusterEventRef = builder.interfaceRef<ClusterEvent>('ClusterEvent').implement({
  description: 'Something that happened in the cluster; the concrete type says what.',
  resolveType: (event) => event.kind,
  fields: (t) => ({
    at: t.field({ type: 'DateTime', description: 'When it happened.', resolve: (e) => e.at }),
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
    datanode: t.field({ type: DatanodeRef, description: 'The datanode, as it is now.', resolve: (e) => e.datanode }),
    previous: t.field({
      type: DatanodeStatusEnum,
      nullable: true,
      description: 'Its status before; null for its first status after it registered.',
      resolve: (e) => e.previous,
    }),
    status: t.field({ type: DatanodeStatusEnum, description: 'Its new status.', resolve: (e) => e.status }),
  }),
});
eventRef('ImageStored').implement({
  description: 'An upload completed: the image is visible.',
  interfaces,
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The image name.' }),
    size: t.expose('size', { type: 'SafeInt', description: 'Bytes in the image.' }),
  }),
});
eventRef('ImageDeleted').implement({
  description: 'An image left the index; its replicas are being deleted.',
  interfaces,
  fields: (t) => ({ name: t.exposeString('name', { description: 'The image name.' }) }),
});
eventRef('UploadExpired').implement({
  description: 'An upload sat idle past the upload TTL and was dropped with its fragments.',
  interfaces,
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The name the upload had reserved (free again).' }),
    uploadId: t.exposeID('uploadId', { description: 'The expired upload id.' }),
  }),
});
eventRef('ReplicaFault').implement({
  description: 'A replica could not serve a verified copy (missing, corrupt, unreadable or unreachable).',
  interfaces,
  fields: (t) => ({
    fragmentId: t.exposeString('fragmentId', { description: 'The fragment id (as on the datanode).' }),
    datanode: t.field({ type: DatanodeRef, description: 'The datanode holding the bad replica.', resolve: (e) => e.datanode }),
    reason: t.exposeString('reason', { description: 'What was wrong: missing, corrupt or unreachable, with detail.' }),
  }),
});
eventRef('ReplicaRepaired').implement({
  description: 'A fragment got a new verified replica (repair or re-replication).',
  interfaces,
  fields: (t) => ({
    fragmentId: t.exposeString('fragmentId', { description: 'The fragment id (as on the datanode).' }),
    datanode: t.field({ type: DatanodeRef, description: 'The datanode that received the new replica.', resolve: (e) => e.datanode }),
    reason: t.exposeString('reason', {
      description: 'Why it was copied: repair of a bad replica, re-replication after a datanode went DOWN, or a drain.',
    }),
  }),
});

const DatanodeHealthRef = builder.objectRef<HealthSample>('DatanodeHealth').implement({
  description: 'One health sample of one datanode (a failed sample too, with null figures).',
  fields: (t) => ({
    at: t.field({ type: 'DateTime', description: 'When the sample was taken.', resolve: (s) => s.at }),
    datanode: t.field({ type: DatanodeRef, description: 'The sampled datanode.', resolve: (s) => s.datanode }),
    status: t.field({ type: DatanodeStatusEnum, description: 'Its status after this sample.', resolve: (s) => s.status }),
    cpuPercent: t.exposeFloat('cpuPercent', {
      nullable: true,
      description: "CPU load of the datanode's machine, in %; null when the sample failed.",
    }),
    memoryPercent: t.exposeFloat('memoryPercent', { nullable: true, description: 'Memory in use, in %; null when the sample failed.' }),
    diskPercent: t.exposeFloat('diskPercent', {
      nullable: true,
      description: 'Use of the filesystem holding its data dir, in %; null when the sample failed.',
    }),
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
    args: { id: t.arg.id({ description: 'Only this datanode (Datanode.id); DATANODE_NOT_FOUND when unknown.' }) },
    subscribe: (_root, { id }, ctx) => {
      // An unknown id would otherwise wait forever for a sample that never comes.
      if (id != null && !ctx.app.cluster.datanode(String(id))) throw new TesseraError('DATANODE_NOT_FOUND', 'No datanode has that id.');
      return ctx.app.events.healthSamples(id == null ? undefined : String(id));
    },
    resolve: (sample) => sample,
  }),
}));
