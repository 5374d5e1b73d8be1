// Chunked uploads, durable: sessions in the index, each fragment
// hashed once, replicated to R datanodes and counted only once every replica is written;
// completion flips the upload into a visible image in one transaction. Each step lives in
// uploads/; this module gives them their shared context.
import type { ImageRow } from './metadata/catalog.ts';
import type { Bytes } from './bytes.ts';
import type { ImageManifest } from './shared/datanode-api.ts';
import { abortUpload, sweepExpiredUploads } from './uploads/abandoned-uploads.ts';
import { beginUpload, type BeginUploadInput, type InsertUpload } from './uploads/begin-upload.ts';
import { completeUpload } from './uploads/complete-upload.ts';
import { putFragment } from './uploads/put-fragment.ts';
import { RunningHashes } from './uploads/running-hashes.ts';
import { assertFragmentSize, assertWholeSize } from './uploads/upload-checks.ts';
import { openUpload, type UploadContext } from './uploads/upload-context.ts';
import { uploadWhole } from './uploads/upload-whole.ts';

export { DEFAULT_CONTENT_TYPE, type BeginUploadInput } from './uploads/begin-upload.ts';
export type { FragmentReceipt } from './uploads/put-fragment.ts';

/** What createUploads is given: the coordinator's parts (and a clock, for tests). */
export type UploadDeps = Omit<UploadContext, 'now' | 'hashes' | 'ttlMs'> & { now?: () => number };

export function createUploads({ now = Date.now, ...deps }: UploadDeps) {
  const { config, catalog } = deps;
  const ctx: UploadContext = { ...deps, now, hashes: new RunningHashes(config, now), ttlMs: config.uploadTtlSec * 1000 };
  return {
    sweepExpired: () => sweepExpiredUploads(ctx),
    openUpload: (uploadId: string) => openUpload(ctx, uploadId),
    /** The open upload or undefined (unknown, completed, aborted or expired). */
    async find(uploadId: string): Promise<ImageRow | undefined> {
      const upload = await catalog.uploadById(uploadId);
      return upload && (upload.expiresAt ?? 0) > now() ? upload : undefined;
    },
    /** The indexes of an open upload's fragments received so far. */
    receivedIndexes: (upload: ImageRow) => catalog.receivedIndexes(upload.id),
    /** `insert`: the token quota's insert (auth/quotas.ts), checked in the same transaction. */
    begin: (input: BeginUploadInput, insert?: InsertUpload) => beginUpload(ctx, input, undefined, insert),
    assertFragmentSize,
    assertWholeSize: (size: number) => assertWholeSize(config, size),
    putFragment: (uploadId: string, index: number, data: Bytes, sha256?: string | null, opened?: ImageRow) =>
      putFragment(ctx, uploadId, index, data, sha256, opened),
    complete: (uploadId: string, sha256?: string | null, written?: ImageManifest) => completeUpload(ctx, uploadId, sha256, written),
    abort: (uploadId: string) => abortUpload(ctx, uploadId),
    uploadWhole: (name: string, data: Bytes, contentType?: string | null) => uploadWhole(ctx, name, data, contentType),
  };
}

export type Uploads = ReturnType<typeof createUploads>;
