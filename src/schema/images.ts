// Stored images: the Image and Fragment types, the listing connection, fragmentData and deleteImage.
import { builder } from './builder.ts';
import { DatanodeRef } from './datanodes.ts';
import type { FragmentWithReplicas, ImageRow } from '../metadata/catalog.ts';
import { IMAGE_PATH_PREFIX } from '../http/image-route.ts';
import type { DatanodeView } from '../cluster/registry.ts';
import type { Context } from '../context.ts';

const datanodesOf = (ctx: Context, ids: string[]) =>
  ids.map((id) => ctx.app.registry.get(id)).filter((n): n is DatanodeView => n !== undefined);

export const FragmentRef = builder.objectRef<FragmentWithReplicas>('Fragment').implement({
  fields: (t) => ({
    index: t.exposeInt('idx'),
    size: t.exposeInt('size'),
    sha256: t.exposeString('sha256'),
    replicas: t.field({ type: [DatanodeRef], resolve: (f, _args, ctx) => datanodesOf(ctx, f.replicas) }),
  }),
});

export const ImageRef = builder.objectRef<ImageRow>('Image').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    size: t.expose('size', { type: 'SafeInt' }),
    contentType: t.exposeString('contentType'),
    sha256: t.string({ description: 'Lowercase hex SHA-256 of the whole image.', resolve: (i) => i.sha256! }),
    fragmentSize: t.exposeInt('fragmentSize'),
    fragmentCount: t.exposeInt('fragmentCount'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    url: t.string({
      description: 'Absolute URL of GET /images/{name} on the coordinator. With expiresIn (seconds, at most 7 days), a signed URL that downloads without a token until it expires.',
      args: { expiresIn: t.arg.int() },
      resolve: (i, { expiresIn }, ctx) => {
        const url = `${ctx.publicBase}${IMAGE_PATH_PREFIX}${encodeURIComponent(i.name)}`;
        if (expiresIn == null || !ctx.principal) return url;
        return `${url}?${ctx.app.auth.signer.sign(i.name, expiresIn, ctx.principal.id)}`;
      },
    }),
    fragments: t.field({ type: [FragmentRef], resolve: (i, _args, ctx) => ctx.app.catalog.fragmentsWithReplicas(i.id) }),
  }),
});

const FragmentDataRef = builder.objectRef<{ fragment: FragmentWithReplicas; data: Buffer }>('FragmentData').implement({
  fields: (t) => ({
    index: t.int({ resolve: (d) => d.fragment.idx }),
    size: t.int({ resolve: (d) => d.fragment.size }),
    sha256: t.string({ resolve: (d) => d.fragment.sha256 }),
    data: t.field({ type: 'Base64', resolve: (d) => d.data }),
  }),
});

type Edge = { cursor: string; node: ImageRow };
const ImageEdgeRef = builder.objectRef<Edge>('ImageEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: ImageRef, resolve: (e) => e.node }) }),
});

const PageInfoRef = builder.objectRef<{ hasNextPage: boolean; endCursor: string | null }>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

type Connection = { edges: Edge[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; prefix?: string };
const ImageConnectionRef = builder.objectRef<Connection>('ImageConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [ImageEdgeRef], resolve: (c) => c.edges }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
    // Counted only when asked: a count over a million rows is the one slow part of a listing.
    totalCount: t.int({ resolve: (c, _args, ctx) => ctx.app.catalog.countImages(c.prefix) }),
  }),
});

builder.queryFields((t) => ({
  images: t.field({
    description: 'Stored images ordered by name, as a Relay cursor connection.',
    type: ImageConnectionRef,
    args: { first: t.arg.int(), after: t.arg.string(), prefix: t.arg.string() },
    resolve: (_root, args, ctx) => ctx.app.images.list(args),
  }),
  image: t.field({
    description: 'One stored image by name; null when there is none.',
    type: ImageRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.app.images.find(name),
  }),
  fragmentData: t.field({
    description: 'The bytes of one fragment of a stored image, for clients that speak only GraphQL.',
    type: FragmentDataRef,
    args: { name: t.arg.string({ required: true }), index: t.arg.int({ required: true }) },
    resolve: (_root, { name, index }, ctx) => ctx.app.images.fragment(name, index),
  }),
}));

builder.mutationFields((t) => ({
  deleteImage: t.boolean({
    description: 'Delete an image and all of its fragment replicas; false when there was no such image.',
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.app.images.delete(name),
  }),
}));
