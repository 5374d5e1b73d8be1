// uploadFragment: one fragment hashed once, written to R datanodes, and counted only once every
// replica is written.
import { randomBase64url } from '../shared/random-ids.ts';
import { byteLength, sha256Hex, type Bytes } from '../bytes.ts';
import { TesseraError } from '../errors.ts';
import { assertFragmentSize, assertSha256 } from './upload-checks.ts';
import { DEFAULT_CONTENT_TYPE } from './begin-upload.ts';
import { detectImageIn, mediaColumns, reconcileContentType } from '../renditions/media.ts';
import { openUpload, recordWrittenFragment, requireLiveDatanodes, stillOpen, type UploadContext } from './upload-context.ts';
import type { ImageRow } from '../metadata/catalog.ts';

export interface FragmentReceipt {
  index: number;
  size: number;
  sha256: string;
  replicas: string[];
}

export const newFragmentId = () => randomBase64url(16);

export async function putFragment(
  ctx: UploadContext,
  uploadId: string,
  index: number,
  data: Bytes,
  sha256?: string | null,
  opened?: ImageRow,
): Promise<FragmentReceipt> {
  const { config, catalog, now } = ctx;
  assertSha256(sha256, 'sha256');
  // `opened`: the row the caller read before the body arrived (not read again per fragment); still
  // open now, or UPLOAD_NOT_FOUND as when read afresh. A completion or abort since is caught where
  // the fragment is recorded (recordFragment checks the upload in its transaction).
  const upload = opened ? stillOpen(ctx, opened) : await openUpload(ctx, uploadId);
  const size = byteLength(data);
  assertFragmentSize(upload, index, size);
  requireLiveDatanodes(ctx);
  // A given sha256 goes to the datanodes as it is: each one hashes what it receives and refuses
  // bytes that differ (CHECKSUM_MISMATCH), so the coordinator's one pass over the bytes is the
  // whole-image hash. Without one, the coordinator hashes the fragment itself.
  const digest = sha256 ?? sha256Hex(data);
  // Fragment 0 holds the header: a contentType that contradicts it is refused before any write.
  const media = index === 0 ? detectImageIn(data) : undefined;
  const declared = upload.contentType === DEFAULT_CONTENT_TYPE ? null : upload.contentType; // octet-stream: none was declared
  const contentType = index === 0 ? reconcileContentType(declared, media, DEFAULT_CONTENT_TYPE) : upload.contentType;

  const fragmentId = newFragmentId();
  let placed: string[];
  try {
    placed = await ctx.replicas.write(fragmentId, data, digest, config.replicationFactor, new Set());
  } catch (err) {
    if (sha256 && err instanceof TesseraError && err.code === 'CHECKSUM_MISMATCH') {
      throw new TesseraError(
        'CHECKSUM_MISMATCH',
        `Fragment ${index}: sha256 ${sha256} was given; the bytes received hash to something else.`,
      );
    }
    throw err;
  }
  const recorded = await recordWrittenFragment(ctx, fragmentId, placed, () =>
    catalog.recordFragment(
      { id: fragmentId, imageId: upload.id, imageKey: upload.imageKey, idx: index, size, sha256: digest },
      placed,
      now() + ctx.ttlMs,
      now(),
    ),
  );
  if (!recorded) {
    throw new TesseraError(
      'UPLOAD_NOT_FOUND',
      `Upload "${uploadId}" was completed, aborted or expired while fragment ${index} was stored.`,
    );
  }
  if (index === 0) await catalog.setMedia(upload, mediaColumns(media), contentType);
  ctx.hashes.offer(upload.imageKey, upload.fragmentCount, index, data, digest);
  if (recorded === 'replaced') void ctx.deleter.kick(); // the replicas of the fragment it replaced
  return { index, size, sha256: digest, replicas: placed };
}
