// uploadImage: the whole file in one request (Yoga buffers multipart bodies), stored through the
// same steps as a chunked upload; a one-fragment image (every small image) in one write.
import { byteLength, sha256Hex, sliceBytes, type Bytes } from '../bytes.ts';
import { TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import { manifestOf } from '../cluster/image-records.ts';
import { abortUpload } from './abandoned-uploads.ts';
import { beginUpload } from './begin-upload.ts';
import { detectImageIn } from '../renditions/media.ts';
import { completeUpload } from './complete-upload.ts';
import { newFragmentId, putFragment } from './put-fragment.ts';
import { assertWholeSize, fragmentSizeAt } from './upload-checks.ts';
import {
  announceStored,
  storedNotice,
  storedRowOf,
  recordWrittenFragment,
  requireLiveDatanodes,
  type UploadContext,
} from './upload-context.ts';

/** Fragments of one uploadImage written at once. */
const IN_FLIGHT = 4;

export async function uploadWhole(ctx: UploadContext, name: string, data: Bytes, contentType?: string | null): Promise<ImageRow> {
  const size = byteLength(data);
  assertWholeSize(ctx.config, size);
  const upload = await beginUpload(ctx, { name, size, contentType }, detectImageIn(data) ?? null);
  const uploadId = upload.uploadId!;
  try {
    if (upload.fragmentCount === 1) return await storeOnlyFragment(ctx, upload, data);
    for (let first = 0; first < upload.fragmentCount; first += IN_FLIGHT) {
      const batch = [];
      for (let idx = first; idx < Math.min(first + IN_FLIGHT, upload.fragmentCount); idx++) {
        const offset = idx * upload.fragmentSize;
        batch.push(putFragment(ctx, uploadId, idx, sliceBytes(data, offset, offset + fragmentSizeAt(upload, idx))));
      }
      await Promise.all(batch);
    }
    return await completeUpload(ctx, uploadId);
  } catch (err) {
    if (await ctx.catalog.uploadById(uploadId)) await abortUpload(ctx, uploadId);
    throw err;
  }
}

/**
 * A one-fragment image: the fragment is the image, so its hash is the image's, and recording it
 * completes the upload in the same transaction.
 */
async function storeOnlyFragment(ctx: UploadContext, upload: ImageRow, data: Bytes): Promise<ImageRow> {
  requireLiveDatanodes(ctx);
  const size = byteLength(data);
  const digest = sha256Hex(data);
  const fragmentId = newFragmentId();
  // Its manifest travels with the fragment: the datanodes know the image before the client does.
  const createdAt = ctx.now();
  const manifest = manifestOf(upload, digest, createdAt, [{ id: fragmentId, idx: 0, size, sha256: digest }]);
  const placed = await ctx.replicas.write(fragmentId, data, digest, ctx.config.replicationFactor, new Set(), manifest);
  const notice = storedNotice(ctx, upload);
  const outcome = await recordWrittenFragment(ctx, fragmentId, placed, () =>
    ctx.catalog.recordOnlyFragmentAndComplete(
      { id: fragmentId, imageId: upload.id, imageKey: upload.imageKey, idx: 0, size, sha256: digest },
      placed,
      digest,
      createdAt,
      notice,
    ),
  );
  if (outcome !== 'done')
    throw new TesseraError('UPLOAD_NOT_FOUND', `Upload "${upload.uploadId}" was aborted or expired while it was stored.`);
  return announceStored(ctx, storedRowOf(upload, digest, createdAt), notice);
}
