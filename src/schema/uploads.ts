// Chunked and one-shot uploads: UploadSession, FragmentReceipt and their mutations.
import { builder } from './builder.ts';
import { DatanodeRef } from './datanodes.ts';
import { ImageRef } from './images.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { FragmentReceipt } from '../uploads.ts';
import type { DatanodeView } from '../cluster/registry.ts';
import { badInput } from '../errors.ts';
import { blobChunks, type Bytes } from '../bytes.ts';

const UploadSessionRef = builder.objectRef<ImageRow>('UploadSession').implement({
  description: 'An open chunked upload: what to send, and what has arrived.',
  fields: (t) => ({
    id: t.id({
      description: 'The upload id, for uploadFragment, completeUpload, abortUpload and upload(id:).',
      resolve: (u) => u.uploadId!,
    }),
    name: t.exposeString('name', { description: 'The name the image will have; reserved until completion, abort or expiry.' }),
    size: t.expose('size', { type: 'SafeInt', description: 'Bytes in the whole image.' }),
    fragmentSize: t.exposeInt('fragmentSize', { description: 'Bytes to send per fragment (every fragment but the last).' }),
    fragmentCount: t.exposeInt('fragmentCount', { description: 'Fragments to send, indexes 0 to fragmentCount - 1.' }),
    contentType: t.exposeString('contentType', { description: 'Media type the image will be served with.' }),
    sha256: t.exposeString('sha256', { nullable: true, description: 'The whole-image SHA-256 announced at beginUpload, if any.' }),
    receivedFragments: t.intList({
      description: 'Indexes of the fragments stored so far, ascending.',
      resolve: (u, _args, ctx) => ctx.app.uploads.receivedIndexes(u),
    }),
    expiresAt: t.field({
      type: 'DateTime',
      description: 'When the upload expires if no fragment arrives before (each one pushes it back).',
      resolve: (u) => u.expiresAt!,
    }),
  }),
});

const FragmentReceiptRef = builder.objectRef<FragmentReceipt>('FragmentReceipt').implement({
  description: 'A fragment stored on every replica and verified.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'The fragment index.' }),
    size: t.exposeInt('size', { description: 'Bytes stored.' }),
    sha256: t.exposeString('sha256', { description: 'Lowercase hex SHA-256 of the fragment as stored.' }),
    replicas: t.field({
      type: [DatanodeRef],
      description: 'Datanodes that hold a verified copy.',
      resolve: (r, _args, ctx) => r.replicas.map((id) => ctx.app.cluster.datanode(id)).filter((n): n is DatanodeView => n !== undefined),
    }),
  }),
});

const BeginUploadInput = builder.inputType('BeginUploadInput', {
  description: 'What beginUpload needs to know about the image to come.',
  fields: (t) => ({
    name: t.string({
      required: true,
      description: 'The image name: 1 to 255 characters, no control characters, not . or .. (a / is allowed).',
    }),
    size: t.field({
      type: 'SafeInt',
      required: true,
      description: 'Bytes in the whole image, at least 1 and at most the configured maximum (PAYLOAD_TOO_LARGE).',
    }),
    contentType: t.string({ description: 'Media type to serve the image with; guessed from the name when absent.' }),
    sha256: t.string({ description: 'Lowercase hex SHA-256 of the whole image; when given, completeUpload verifies it.' }),
  }),
});

builder.queryField('upload', (t) =>
  t.field({
    description: 'An open upload session, to resume it; null when unknown, completed or expired.',
    type: UploadSessionRef,
    nullable: true,
    args: { id: t.arg.id({ required: true, description: 'The upload id (UploadSession.id).' }) },
    resolve: (_root, { id }, ctx) => ctx.app.uploads.find(String(id)),
  }),
);

builder.mutationFields((t) => ({
  beginUpload: t.field({
    description: 'Open a chunked upload: the coordinator answers with the fragment size and count to send.',
    type: UploadSessionRef,
    args: {
      input: t.arg({
        type: BeginUploadInput,
        required: true,
        description: 'Name, size, and optionally media type and whole-image SHA-256.',
      }),
    },
    // The token's quotas on open uploads are checked and charged in the same transaction.
    resolve: (_root, { input }, ctx) =>
      ctx.app.auth.quotas.reserveUpload(ctx.principal!, input.size, (insert) => ctx.app.uploads.begin(input, insert)),
  }),
  uploadFragment: t.field({
    description: 'Send one fragment, as base64 `data` or as a multipart `file` (exactly one of them). Idempotent per index.',
    type: FragmentReceiptRef,
    args: {
      uploadId: t.arg.id({ required: true, description: 'The upload id (UploadSession.id).' }),
      index: t.arg.int({ required: true, description: 'The fragment, 0 to fragmentCount - 1; sending an index again replaces it.' }),
      data: t.arg({ type: 'Base64', description: 'The bytes as base64, for JSON-only clients (GraphiQL).' }),
      file: t.arg({ type: 'File', description: 'The bytes as a multipart file part: the fast path.' }),
      sha256: t.arg.string({ description: 'Lowercase hex SHA-256 of the fragment; CHECKSUM_MISMATCH when the bytes differ.' }),
    },
    resolve: async (_root, { uploadId, index, data, file, sha256 }, ctx) => {
      if ((data == null) === (file == null)) throw badInput('Send the fragment as exactly one of `data` (base64) or `file` (multipart).');
      let bytes: Bytes | null | undefined = data;
      let upload: ImageRow | undefined;
      if (!bytes) {
        const uploads = ctx.app.uploads;
        // The multipart reader has already received the part (within the fragment cap); checking
        // its size first refuses a wrong one before it is hashed or sent to any datanode.
        upload = await uploads.openUpload(String(uploadId));
        ctx.app.uploads.assertFragmentSize(upload, index, file!.size);
        bytes = await blobChunks(file!); // the part's chunks as received: no join, no copy
      }
      return ctx.app.uploads.putFragment(String(uploadId), index, bytes, sha256, upload);
    },
  }),
  completeUpload: t.field({
    description: 'Seal an upload whose fragments have all arrived: the image becomes visible atomically.',
    type: ImageRef,
    args: {
      uploadId: t.arg.id({ required: true, description: 'The upload id (UploadSession.id).' }),
      sha256: t.arg.string({
        description: 'Lowercase hex SHA-256 of the whole image, if known only now: verified before the image becomes visible.',
      }),
    },
    resolve: (_root, { uploadId, sha256 }, ctx) => ctx.app.uploads.complete(String(uploadId), sha256),
  }),
  abortUpload: t.boolean({
    description: 'Drop an open upload and the fragments it stored.',
    args: { uploadId: t.arg.id({ required: true, description: 'The upload id (UploadSession.id).' }) },
    resolve: (_root, { uploadId }, ctx) => ctx.app.uploads.abort(String(uploadId)),
  }),
  uploadImage: t.field({
    description: 'One-shot upload of a whole file in a multipart request; the coordinator fragments it.',
    type: ImageRef,
    args: {
      name: t.arg.string({
        required: true,
        description: 'The image name: 1 to 255 characters, no control characters, not . or .. (a / is allowed).',
      }),
      file: t.arg({ type: 'File', required: true, description: 'The whole image as a multipart file part.' }),
      contentType: t.arg.string({
        description: "Media type to serve the image with; else the part's own type, else guessed from the name.",
      }),
    },
    resolve: async (_root, { name, file, contentType }, ctx) => {
      ctx.app.uploads.assertWholeSize(file.size);
      const type = contentType ?? (file.type && file.type !== 'application/octet-stream' ? file.type : undefined);
      return ctx.app.uploads.uploadWhole(name, await blobChunks(file), type);
    },
  }),
}));
