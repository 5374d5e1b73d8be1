// Datanodes and the cluster: the Datanode type with its last health sample, ClusterStatus,
// and registerDatanode (guarded by the cluster secret).
import { builder } from './builder.ts';
import type { DatanodeView } from '../cluster/registry.ts';
import { TesseraError } from '../errors.ts';

export const DatanodeStatusEnum = builder.enumType('DatanodeStatus', { values: ['UP', 'DEGRADED', 'DOWN'] as const });

export const DatanodeRef = builder.objectRef<DatanodeView>('Datanode').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    url: t.exposeString('url', { description: "Base URL of the datanode's HTTP surface." }),
    // Before its first sample decides, a datanode is not live: shown as DOWN.
    status: t.field({ type: DatanodeStatusEnum, resolve: (n) => n.status ?? 'DOWN' }),
    lastSeenAt: t.field({ type: 'DateTime', nullable: true, description: 'When the datanode last answered a health sample.', resolve: (n) => n.lastSeenAt }),
    cpuPercent: t.exposeFloat('cpuPercent', { nullable: true }),
    memoryPercent: t.exposeFloat('memoryPercent', { nullable: true }),
    diskPercent: t.exposeFloat('diskPercent', { nullable: true }),
    diskFreeBytes: t.expose('diskFreeBytes', { type: 'SafeInt', nullable: true }),
    fragmentCount: t.exposeInt('fragmentCount'),
    storedBytes: t.expose('storedBytes', { type: 'SafeInt' }),
    draining: t.exposeBoolean('draining', { description: 'Takes no new replicas; its fragments are being moved elsewhere.' }),
    identityFault: t.string({
      nullable: true,
      description:
        'Why the server at this URL is not trusted as this datanode (WRONG_NODE: it answers with another datanode\'s data dir, e.g. swapped URLs; WRONG_CLUSTER; UNPROVEN: no proof of the cluster secret). While set, the datanode is DOWN and nothing is read, written, repaired or deleted through it. Null when its last answer proved its identity.',
      resolve: (n) => n.identityFault ?? null,
    }),
  }),
});

const ClusterStatusRef = builder.objectRef<Record<string, never>>('ClusterStatus').implement({
  fields: (t) => ({
    replicationFactor: t.int({ resolve: (_c, _a, ctx) => ctx.app.config.replicationFactor }),
    fragmentSize: t.int({ resolve: (_c, _a, ctx) => ctx.app.config.fragmentSize }),
    datanodeCount: t.int({ resolve: (_c, _a, ctx) => ctx.app.registry.all().length }),
    liveDatanodeCount: t.int({ resolve: (_c, _a, ctx) => ctx.app.registry.live().length }),
    imageCount: t.int({ resolve: (_c, _a, ctx) => ctx.app.catalog.totals().imageCount }),
    storedBytes: t.field({ type: 'SafeInt', description: 'Sum of the sizes of stored images (one copy).', resolve: (_c, _a, ctx) => ctx.app.catalog.totals().storedBytes }),
    underReplicatedFragments: t.int({
      description: 'Fragments with fewer verified replicas on live datanodes than the replication factor.',
      resolve: (_c, _a, ctx) => ctx.app.catalog.underReplicatedCount(ctx.app.config.replicationFactor),
    }),
    pendingReplicaDeletions: t.int({
      description: 'Replica files still to delete from datanodes (some may be DOWN).',
      resolve: (_c, _a, ctx) => ctx.app.catalog.pendingDeletionCount(),
    }),
  }),
});

builder.queryFields((t) => ({
  datanodes: t.field({
    description: 'Every datanode the coordinator knows of, with its last health sample.',
    type: [DatanodeRef],
    resolve: (_root, _args, ctx) => ctx.app.registry.all(),
  }),
  cluster: t.field({ description: 'Cluster-wide figures.', type: ClusterStatusRef, resolve: () => ({}) }),
}));

const requireSecret = (authorized: boolean, what: string) => {
  if (!authorized) throw new TesseraError('UNAUTHENTICATED', `${what} needs \`Authorization: Bearer <cluster secret>\`.`);
};

builder.mutationFields((t) => ({
  drainDatanode: t.field({
    description: 'Decommission a datanode: it takes no new replicas and its fragments are copied elsewhere (drain: false undoes it). Needs the cluster secret.',
    type: DatanodeRef,
    args: { id: t.arg.id({ required: true }), drain: t.arg.boolean({ defaultValue: true }) },
    resolve: (_root, { id, drain }, ctx) => {
      requireSecret(ctx.authorized, 'drainDatanode');
      return ctx.app.drainDatanode(String(id), drain ?? true);
    },
  }),
  removeDatanode: t.boolean({
    description: 'Forget a drained datanode that holds no replica any more. Needs the cluster secret.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => {
      requireSecret(ctx.authorized, 'removeDatanode');
      return ctx.app.removeDatanode(String(id));
    },
  }),
  registerDatanode: t.field({
    description: 'Add a datanode by its base URL (idempotent: the same URL returns the same datanode). Needs the cluster secret.',
    type: DatanodeRef,
    args: { url: t.arg.string({ required: true }) },
    resolve: (_root, { url }, ctx) => {
      requireSecret(ctx.authorized, 'registerDatanode');
      return ctx.app.registerDatanode(url);
    },
  }),
}));
