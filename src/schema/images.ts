// Stored images: the Image and Fragment types, the listing connection, fragmentData and deleteImage.
import { builder } from './builder.ts';
import { DatanodeRef } from './datanodes.ts';
import type { FragmentWithReplicas, ImageRow } from '../metadata/catalog.ts';
import { imagePath } from '../image-paths.ts';
import type { DatanodeView } from '../cluster/registry.ts';
import type { Context } from '../context.ts';

const datanodesOf = (ctx: Context, ids: string[]) =>
  ids.map((id) => ctx.app.cluster.datanode(id)).filter((n): n is DatanodeView => n !== undefined);

export const FragmentRef = builder.objectRef<FragmentWithReplicas>('Fragment').implement({
  description: 'One fragment of a stored image and where its verified copies live.',
  fields: (t) => ({
    index: t.exposeInt('idx', { description: 'Position of the fragment in the image, from 0.' }),
    size: t.exposeInt('size', { description: 'Bytes in the fragment: fragmentSize, except for the last one.' }),
    sha256: t.exposeString('sha256', { description: 'Lowercase hex SHA-256 of the fragment.' }),
    replicas: t.field({
      type: [DatanodeRef],
      description: 'Datanodes that hold a verified copy.',
      resolve: (f, _args, ctx) => datanodesOf(ctx, f.replicas),
    }),
  }),
});

export const ImageRef = builder.objectRef<ImageRow>('Image').implement({
  description: 'A stored image: its metadata and its fragments.',
  fields: (t) => ({
    name: t.exposeString('name', {
      description: 'The unique name: 1 to 255 characters, no control characters, not . or .. (a / is allowed).',
    }),
    size: t.expose('size', { type: 'SafeInt', description: 'Bytes in the image.' }),
    contentType: t.exposeString('contentType', {
      description: 'Media type served by GET /images/{name}, as given at upload or guessed from the name.',
    }),
    sha256: t.string({ description: 'Lowercase hex SHA-256 of the whole image.', resolve: (i) => i.sha256! }),
    fragmentSize: t.exposeInt('fragmentSize', { description: 'Bytes per fragment of this image (every fragment but the last).' }),
    fragmentCount: t.exposeInt('fragmentCount', { description: 'Number of fragments.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the upload completed and the image became visible.' }),
    url: t.string({
      description:
        'Absolute URL of GET /images/{name} on the coordinator. With expiresIn (seconds, at most 7 days), a signed URL that downloads without a token until it expires.',
      args: {
        expiresIn: t.arg.int({
          description: 'Seconds the signed URL stays valid (at most 7 days); absent: the plain URL, which needs a token.',
        }),
      },
      resolve: (i, { expiresIn }, ctx) => {
        const url = `${ctx.publicBase}${imagePath(i.name)}`;
        if (expiresIn == null || !ctx.principal) return url;
        return `${url}?${ctx.app.auth.signer.sign(i.name, expiresIn, ctx.principal.id)}`;
      },
    }),
    fragments: t.field({
      type: [FragmentRef],
      description: 'The fragments in order, with their replicas.',
      resolve: (i, _args, ctx) => ctx.app.images.fragments(i),
    }),
  }),
});

const FragmentDataRef = builder.objectRef<{ fragment: FragmentWithReplicas; data: Buffer }>('FragmentData').implement({
  description: "One fragment's bytes, read from a replica and verified against its SHA-256.",
  fields: (t) => ({
    index: t.int({ description: 'Position of the fragment in the image, from 0.', resolve: (d) => d.fragment.idx }),
    size: t.int({ description: 'Bytes in the fragment.', resolve: (d) => d.fragment.size }),
    sha256: t.string({
      description: 'Lowercase hex SHA-256 of the fragment (the bytes in data match it).',
      resolve: (d) => d.fragment.sha256,
    }),
    data: t.field({ type: 'Base64', description: 'The bytes, base64 (RFC 4648).', resolve: (d) => d.data }),
  }),
});

type Edge = { cursor: string; node: ImageRow };
const ImageEdgeRef = builder.objectRef<Edge>('ImageEdge').implement({
  description: 'One image of a listing page, with its cursor.',
  fields: (t) => ({
    cursor: t.exposeString('cursor', { description: 'Opaque; pass it as `after` to list the images after this one.' }),
    node: t.field({ type: ImageRef, description: 'The image.', resolve: (e) => e.node }),
  }),
});

const PageInfoRef = builder.objectRef<{ hasNextPage: boolean; endCursor: string | null }>('PageInfo').implement({
  description: 'Where a listing page ends (Relay cursor connections).',
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage', {
      description: 'Whether images follow this page; always false for an empty page (first: 0), which has no cursor to continue from.',
    }),
    endCursor: t.exposeString('endCursor', {
      nullable: true,
      description: "The last edge's cursor, to pass as `after` for the next page; null when the page is empty.",
    }),
  }),
});

type Connection = { edges: Edge[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; prefix?: string };
const ImageConnectionRef = builder.objectRef<Connection>('ImageConnection').implement({
  description: 'A page of stored images, ordered by the byte order of their UTF-8 names.',
  fields: (t) => ({
    edges: t.field({ type: [ImageEdgeRef], description: 'The images of this page, in order.', resolve: (c) => c.edges }),
    pageInfo: t.field({
      type: PageInfoRef,
      description: 'Whether more images follow, and the cursor to get them.',
      resolve: (c) => c.pageInfo,
    }),
    // Counted only when asked: a count over a million rows is the one slow part of a listing.
    totalCount: t.int({
      description: 'Images matching `prefix` in all pages (counted only when asked for).',
      resolve: (c, _args, ctx) => ctx.app.images.count(c.prefix),
    }),
  }),
});

builder.queryFields((t) => ({
  images: t.field({
    description: 'Stored images ordered by name, as a Relay cursor connection.',
    type: ImageConnectionRef,
    args: {
      first: t.arg.int({ description: 'Page size, 0 to 1000 (default 50); 0 answers only totalCount.' }),
      after: t.arg.string({ description: 'The endCursor of the previous page; absent for the first page.' }),
      prefix: t.arg.string({ description: 'Only names starting with this string (e.g. "cats/").' }),
    },
    resolve: (_root, args, ctx) => ctx.app.images.list(args),
  }),
  image: t.field({
    description: 'One stored image by name; null when there is none.',
    type: ImageRef,
    nullable: true,
    args: { name: t.arg.string({ required: true, description: 'The image name.' }) },
    resolve: (_root, { name }, ctx) => ctx.app.images.find(name),
  }),
  fragmentData: t.field({
    description: 'The bytes of one fragment of a stored image, for clients that speak only GraphQL.',
    type: FragmentDataRef,
    args: {
      name: t.arg.string({ required: true, description: 'The image name.' }),
      index: t.arg.int({ required: true, description: 'The fragment, 0 to fragmentCount - 1 (INVALID_FRAGMENT otherwise).' }),
    },
    resolve: (_root, { name, index }, ctx) => ctx.app.images.fragment(name, index),
  }),
}));

builder.mutationFields((t) => ({
  deleteImage: t.boolean({
    description: 'Delete an image and all of its fragment replicas; false when there was no such image.',
    args: { name: t.arg.string({ required: true, description: 'The image to delete.' }) },
    resolve: (_root, { name }, ctx) => ctx.app.images.delete(name),
  }),
}));
