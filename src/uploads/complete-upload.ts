// completeUpload: every fragment present, the whole image's hash checked, the manifest on the
// datanodes, then the upload flips into a visible image in one transaction.
import { TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import { manifestOf } from '../cluster/image-records.ts';
import type { ImageManifest } from '../shared/datanode-api.ts';
import { assertSha256 } from './upload-checks.ts';
import { announceStored, openUpload, storedNotice, storedRowOf, type UploadContext } from './upload-context.ts';

type FragmentRow = { idx: number; id: string; sha256: string; size: number };

/**
 * `sha256`: the whole image's hash, when the client learnt it only while sending (beyond
 * beginUpload's). `written`: a manifest already on the datanodes (sent with the fragment).
 */
export async function completeUpload(
  ctx: UploadContext,
  uploadId: string,
  sha256Given?: string | null,
  written?: ImageManifest,
): Promise<ImageRow> {
  const { catalog } = ctx;
  assertSha256(sha256Given, 'sha256');
  for (;;) {
    const upload = await openUpload(ctx, uploadId);
    const fragments = await catalog.fragments(upload.id);
    if (fragments.length < upload.fragmentCount) throw incomplete(uploadId, upload, fragments);
    const sha256 = await wholeImageHash(ctx, upload, fragments);
    ctx.hashes.forget(upload.imageKey);
    for (const announced of [upload.sha256, sha256Given]) {
      if (announced && announced !== sha256) {
        throw new TesseraError(
          'CHECKSUM_MISMATCH',
          `The image hashes to ${sha256}, not the announced ${announced}; resend the wrong fragments and complete again.`,
        );
      }
    }
    // The datanodes learn what the image is before the client hears it is stored: lose the
    // index after this answer and a rebuild still finds the image.
    const current =
      written &&
      written.sha256 === sha256 &&
      written.fragments.length === fragments.length &&
      written.fragments.every((f, i) => f.id === fragments[i].id)
        ? written
        : undefined;
    const createdAt = current?.createdAt ?? ctx.now();
    if (!current) {
      const holders = (await Promise.all(fragments.map((f) => catalog.replicasOf(f.id)))).flat();
      await ctx.records.writeManifest(manifestOf(upload, sha256, createdAt, fragments), holders);
    }
    const notice = storedNotice(ctx, upload);
    const outcome = await catalog.completeUpload(
      upload.id,
      fragments.map((f) => f.id),
      sha256,
      createdAt,
      notice,
    );
    if (outcome === 'changed') continue; // a fragment was replaced while we hashed: hash again
    if (outcome === 'gone') throw new TesseraError('UPLOAD_NOT_FOUND', `Upload "${uploadId}" was aborted or expired.`);
    return announceStored(ctx, storedRowOf(upload, sha256, createdAt), notice);
  }
}

function incomplete(uploadId: string, upload: ImageRow, fragments: readonly FragmentRow[]): TesseraError {
  const have = new Set(fragments.map((f) => f.idx));
  const missing = Array.from({ length: upload.fragmentCount }, (_, i) => i).filter((i) => !have.has(i));
  const shown = missing.slice(0, 20).join(', ') + (missing.length > 20 ? `, … (${missing.length} in all)` : '');
  return new TesseraError('UPLOAD_INCOMPLETE', `Upload "${uploadId}" is missing fragment${missing.length === 1 ? '' : 's'} ${shown}.`, {
    missing,
  });
}

async function wholeImageHash(ctx: UploadContext, upload: ImageRow, fragments: readonly FragmentRow[]): Promise<string> {
  const hash = ctx.hashes.take(upload.imageKey, fragments);
  // Catch up from the datanodes where the running hash stopped (after a restart: from 0).
  try {
    while (hash.next < upload.fragmentCount) {
      const f = fragments[hash.next];
      hash.push(await ctx.replicas.read({ ...f, replicas: await ctx.catalog.replicasOf(f.id) }));
    }
  } catch (err) {
    hash.digest(); // gives its window back to the budget
    throw err;
  }
  return hash.digest();
}
