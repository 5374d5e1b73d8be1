// uploadImage: the whole file in one request (Yoga buffers multipart bodies), stored through the
// same steps as a chunked upload; a one-fragment image (every small image) in one write.
import { byteLength, sha256Hex, sliceBytes, type Bytes } from '../bytes.ts';
import { TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import { manifestOf } from '../cluster/image-records.ts';
import { abortUpload } from './abandoned-uploads.ts';
import { beginUpload, type BeginUploadInput } from './begin-upload.ts';
import { detectImageIn, type ImageMedia } from '../renditions/media.ts';
import { completeUpload } from './complete-upload.ts';
import { newFragmentId, putFragment } from './put-fragment.ts';
import { assertWholeSize, fragmentSizeAt } from './upload-checks.ts';
import { announceStored, storedNotice, storedRowOf, recordWrittenFragment, type UploadContext } from './upload-context.ts';

/** Fragments of one uploadImage written at once. */
const IN_FLIGHT = 4;

export async function uploadWhole(ctx: UploadContext, name: string, data: Bytes, contentType?: string | null): Promise<ImageRow> {
  const size = byteLength(data);
  assertWholeSize(ctx.config, size);
  const input = { name, size, contentType };
  const media = detectImageIn(data) ?? null;
  if (size <= ctx.config.fragmentSize) return storeOnlyFragment(ctx, input, media, data);
  const upload = await beginUpload(ctx, input, media);
  const uploadId = upload.uploadId!;
  try {
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
    await abortWhole(ctx, upload);
    throw err;
  }
}

/**
 * A one-fragment image: the fragment is the image, so its hash is the image's, and recording it
 * completes the upload in the same transaction. Its id and datanodes are chosen first, so the
 * upload's row and the write intents that cover the copies are one commit: two in all, not three.
 */
async function storeOnlyFragment(ctx: UploadContext, input: BeginUploadInput, media: ImageMedia | null, data: Bytes): Promise<ImageRow> {
  const size = byteLength(data);
  const digest = sha256Hex(data);
  const fragmentId = newFragmentId();
  let planned: string[] = [];
  // Placed once beginUpload's checks passed (a bad name is refused as such, whatever the datanodes).
  const upload = await beginUpload(ctx, input, media, async (row) => {
    planned = await ctx.replicas.place(fragmentId, ctx.config.replicationFactor);
    return ctx.catalog.insertUploadWithIntents(row, fragmentId, planned);
  });
  // Its manifest travels with the fragment: the datanodes know the image before the client does.
  const createdAt = ctx.now();
  const manifest = manifestOf(upload, digest, createdAt, [{ id: fragmentId, idx: 0, size, sha256: digest }]);
  const notice = storedNotice(ctx, upload);
  try {
    // The first call once the intents are committed (the three lines above only build objects):
    // from here the write releases those it does not place.
    const placed = await ctx.replicas.write(fragmentId, data, digest, ctx.config.replicationFactor, new Set(), manifest, planned);
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
  } catch (err) {
    await abortWhole(ctx, upload);
    throw err;
  }
  return announceStored(ctx, storedRowOf(upload, digest, createdAt), notice);
}

/** An uploadImage that failed: its upload, if still open, goes (with whatever it recorded). */
async function abortWhole(ctx: UploadContext, upload: ImageRow) {
  if (await ctx.catalog.uploadById(upload.uploadId!)) await abortUpload(ctx, upload.uploadId!);
}
