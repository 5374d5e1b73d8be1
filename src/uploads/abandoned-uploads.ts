// Uploads that end without an image: aborted by the client, or expired after a quiet TTL.
import { openUpload, type UploadContext } from './upload-context.ts';

export async function abortUpload(ctx: UploadContext, uploadId: string): Promise<boolean> {
  const upload = await openUpload(ctx, uploadId);
  await ctx.catalog.deleteImage(upload.id, ctx.now(), 'upload-aborted');
  ctx.hashes.drop(upload.imageKey);
  void ctx.deleter.kick();
  return true;
}

/** Deletes the uploads past their expiry; resolves to how many there were. */
export async function sweepExpiredUploads(ctx: UploadContext): Promise<number> {
  const { catalog, now } = ctx;
  const expired = await catalog.expiredUploads(now());
  for (const upload of expired) {
    const notice = ctx.events.notice({
      kind: 'UploadExpired',
      message: `Upload of "${upload.name}" expired.`,
      name: upload.name,
      uploadId: upload.uploadId!,
    });
    if (!(await catalog.deleteImage(upload.id, now(), 'upload-expired', notice))) continue;
    ctx.hashes.drop(upload.imageKey);
    ctx.log.info({ upload: upload.uploadId, image: upload.name }, 'upload expired');
    ctx.events.committed(notice);
  }
  if (expired.length > 0) void ctx.deleter.kick();
  return expired.length;
}
