// beginUpload: an upload session in the index, holding its image's name until it completes,
// is aborted or expires.
import { randomBase64url } from '../shared/random-ids.ts';
import { badInput, TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { NewUpload } from '../metadata/catalog/image-rows.ts';
import { assertImageName } from '../names.ts';
import { sweepExpiredUploads } from './abandoned-uploads.ts';
import { assertContentType, assertSha256 } from './upload-checks.ts';
import { requireLiveDatanodes, type UploadContext } from './upload-context.ts';
import { mediaColumns, reconcileContentType, type ImageMedia } from '../renditions/media.ts';
import { isWholeNumberIn } from '../shared/flag-values.ts';

/** Inserts an open upload (catalog.insertUpload; with a token quota, checked in the same transaction). */
export type InsertUpload = (row: NewUpload) => Promise<ImageRow>;

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

export interface BeginUploadInput {
  name: string;
  size: number;
  contentType?: string | null;
  sha256?: string | null;
}

/**
 * `media`: what the bytes are, when they are already here (uploadImage: null for a non-image);
 * undefined for a chunked upload, whose fragment 0 tells.
 */
export async function beginUpload(
  ctx: UploadContext,
  input: BeginUploadInput,
  media?: ImageMedia | null,
  insert: InsertUpload = async (row) => ctx.catalog.insertUpload(row),
): Promise<ImageRow> {
  const { config } = ctx;
  assertImageName(input.name);
  if (!isWholeNumberIn(input.size, 1)) throw badInput(`size must be at least 1 (got ${input.size}).`);
  if (input.size > config.maxImageSize) {
    throw new TesseraError('PAYLOAD_TOO_LARGE', `${input.size} bytes is more than the maximum image size of ${config.maxImageSize}.`);
  }
  assertSha256(input.sha256, 'sha256');
  assertContentType(input.contentType);
  requireLiveDatanodes(ctx);
  const t = ctx.now();
  const row = {
    name: input.name,
    uploadId: randomBase64url(12),
    size: input.size,
    contentType:
      media === undefined
        ? (input.contentType ?? DEFAULT_CONTENT_TYPE)
        : reconcileContentType(input.contentType, media ?? undefined, DEFAULT_CONTENT_TYPE),
    sha256: input.sha256 ?? null,
    ...(media === undefined ? {} : { ...mediaColumns(media ?? undefined), mediaChecked: 1 }),
    fragmentSize: config.fragmentSize,
    fragmentCount: Math.ceil(input.size / config.fragmentSize),
    createdAt: t,
    expiresAt: t + ctx.ttlMs,
  };
  try {
    return await insert(row);
  } catch (err) {
    // An expired upload must not hold the name: swept here, on a clash, rather than before every insert.
    if (err instanceof TesseraError && err.code === 'IMAGE_ALREADY_EXISTS' && (await sweepExpiredUploads(ctx)) > 0)
      return await insert(row);
    throw err;
  }
}
