// Datanodes and the cluster: the Datanode type with its last health sample, ClusterStatus,
// and registerDatanode (an admin token or the cluster secret: src/auth/rules.ts).
import { builder } from './builder.ts';
import type { DatanodeView } from '../cluster/registry.ts';

export const DatanodeStatusEnum = builder.enumType('DatanodeStatus', {
  description: 'What the health monitor makes of a datanode (see the README, "Health"). UP and DEGRADED are live.',
  values: {
    UP: { description: 'Answers its health samples and is below every DEGRADED threshold: takes new replicas first.' },
    DEGRADED: {
      description:
        'Answers, but CPU, memory or disk is over its threshold: serves reads, takes replicas only when too few UP datanodes remain.',
    },
    DOWN: {
      description:
        'Missed 3 health samples in a row (or never answered): not used; its fragments are re-replicated after --repair-after seconds.',
    },
  } as const,
});

export const DatanodeRef = builder.objectRef<DatanodeView>('Datanode').implement({
  description: 'A datanode the coordinator knows, with its last health sample.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Stable id the coordinator gave the datanode when it registered (dn-…).' }),
    url: t.exposeString('url', { description: "Base URL of the datanode's HTTP surface." }),
    // Before its first sample decides, a datanode is not live: shown as DOWN.
    status: t.field({
      type: DatanodeStatusEnum,
      description: 'Current status; DOWN until its first health sample decides.',
      resolve: (n) => n.status ?? 'DOWN',
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the datanode last answered a health sample.',
      resolve: (n) => n.lastSeenAt,
    }),
    cpuPercent: t.exposeFloat('cpuPercent', {
      nullable: true,
      description: "CPU load of the datanode's machine at the last sample, in %; null before the first.",
    }),
    memoryPercent: t.exposeFloat('memoryPercent', {
      nullable: true,
      description: "Memory in use on the datanode's machine, (total - available) / total, in %; null before the first sample.",
    }),
    diskPercent: t.exposeFloat('diskPercent', {
      nullable: true,
      description: 'Use of the filesystem holding its data dir, in %; null before the first sample.',
    }),
    diskFreeBytes: t.expose('diskFreeBytes', {
      type: 'SafeInt',
      nullable: true,
      description: 'Free bytes on the filesystem holding its data dir; null before the first sample.',
    }),
    fragmentCount: t.exposeInt('fragmentCount', { description: 'Fragment files the datanode holds, as it reported at the last sample.' }),
    storedBytes: t.expose('storedBytes', {
      type: 'SafeInt',
      description: 'Bytes of fragment files the datanode holds, as it reported at the last sample.',
    }),
    draining: t.exposeBoolean('draining', { description: 'Takes no new replicas; its fragments are being moved elsewhere.' }),
    identityFault: t.string({
      nullable: true,
      description:
        "Why the server at this URL is not trusted as this datanode (WRONG_NODE: it answers with another datanode's data dir, e.g. swapped URLs; WRONG_CLUSTER; UNPROVEN: no proof of the cluster secret). While set, the datanode is DOWN and nothing is read, written, repaired or deleted through it. Null when its last answer proved its identity.",
      resolve: (n) => n.identityFault ?? null,
    }),
  }),
});

const ClusterStatusRef = builder.objectRef<Record<string, never>>('ClusterStatus').implement({
  description: 'Cluster-wide settings and figures.',
  fields: (t) => ({
    replicationFactor: t.int({
      description: 'Verified copies kept of every fragment, each on another datanode.',
      resolve: (_c, _a, ctx) => ctx.app.config.replicationFactor,
    }),
    fragmentSize: t.int({
      description: 'Bytes per fragment of new uploads (every fragment but the last).',
      resolve: (_c, _a, ctx) => ctx.app.config.fragmentSize,
    }),
    datanodeCount: t.int({
      description: 'Datanodes the coordinator knows, whatever their status.',
      resolve: (_c, _a, ctx) => ctx.app.cluster.datanodes().length,
    }),
    liveDatanodeCount: t.int({
      description: 'Datanodes that are UP or DEGRADED.',
      resolve: (_c, _a, ctx) => ctx.app.cluster.liveDatanodes().length,
    }),
    imageCount: t.int({
      description: 'Stored images (completed uploads).',
      resolve: async (_c, _a, ctx) => (await ctx.app.images.totals()).imageCount,
    }),
    storedBytes: t.field({
      type: 'SafeInt',
      description: 'Sum of the sizes of stored images (one copy).',
      resolve: async (_c, _a, ctx) => (await ctx.app.images.totals()).storedBytes,
    }),
    underReplicatedFragments: t.int({
      description: 'Fragments with fewer verified replicas on live datanodes than the replication factor.',
      resolve: (_c, _a, ctx) => ctx.app.cluster.underReplicatedFragments(),
    }),
    pendingReplicaDeletions: t.int({
      description: 'Replica files still to delete from datanodes (some may be DOWN).',
      resolve: (_c, _a, ctx) => ctx.app.cluster.pendingReplicaDeletions(),
    }),
  }),
});

builder.queryFields((t) => ({
  datanodes: t.field({
    description: 'Every datanode the coordinator knows of, with its last health sample.',
    type: [DatanodeRef],
    resolve: (_root, _args, ctx) => ctx.app.cluster.datanodes(),
  }),
  cluster: t.field({ description: 'Cluster-wide figures.', type: ClusterStatusRef, resolve: () => ({}) }),
}));

builder.mutationFields((t) => ({
  drainDatanode: t.field({
    description:
      'Decommission a datanode: it takes no new replicas and its fragments are copied elsewhere (drain: false undoes it). Needs an admin token or the cluster secret.',
    type: DatanodeRef,
    args: {
      id: t.arg.id({ required: true, description: 'The datanode to drain (Datanode.id).' }),
      drain: t.arg.boolean({ defaultValue: true, description: 'true drains the datanode, false puts it back in service.' }),
    },
    resolve: (_root, { id, drain }, ctx) => {
      return ctx.app.cluster.drain(String(id), drain ?? true);
    },
  }),
  removeDatanode: t.boolean({
    description: 'Forget a drained datanode that holds no replica any more. Needs an admin token or the cluster secret.',
    args: { id: t.arg.id({ required: true, description: 'The drained datanode to forget (Datanode.id).' }) },
    resolve: (_root, { id }, ctx) => {
      return ctx.app.cluster.remove(String(id));
    },
  }),
  registerDatanode: t.field({
    description:
      'Add a datanode by its base URL (idempotent: the same URL returns the same datanode). Needs an admin token or the cluster secret.',
    type: DatanodeRef,
    args: { url: t.arg.string({ required: true, description: "Base URL of the datanode's HTTP surface, e.g. http://10.0.0.7:4001." }) },
    resolve: (_root, { url }, ctx) => {
      return ctx.app.cluster.register(url);
    },
  }),
}));
