// What the upload steps share: the coordinator's parts they use, the clock, the running
// whole-image hashes, and the few checks and endings every step needs.
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config.ts';
import { TesseraError } from '../errors.ts';
import type { EventBus, EventNotice } from '../events.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { Replicas } from '../cluster/replicas.ts';
import type { Registry } from '../cluster/registry.ts';
import type { ReplicaDeleter } from '../cluster/replica-deletions.ts';
import type { ImageRecords } from '../cluster/image-records.ts';
import type { RunningHashes } from './running-hashes.ts';
import { recordOrRelease } from '../cluster/intent-release.ts';

export interface UploadContext {
  config: CoordinatorConfig;
  catalog: Catalog;
  registry: Registry;
  replicas: Replicas;
  records: ImageRecords;
  deleter: ReplicaDeleter;
  events: EventBus;
  log: Logger;
  now: () => number;
  hashes: RunningHashes;
  /** How long an upload stays open after its last fragment. */
  ttlMs: number;
}

/** The open upload, or UPLOAD_NOT_FOUND (also once it has expired, swept or not). */
export async function openUpload(ctx: UploadContext, uploadId: string): Promise<ImageRow> {
  const upload = await ctx.catalog.uploadById(uploadId);
  if (!upload) throw new TesseraError('UPLOAD_NOT_FOUND', `No open upload has id "${uploadId}".`);
  return stillOpen(ctx, upload);
}

/** An upload row read earlier, if it has not expired since; else UPLOAD_NOT_FOUND. */
export function stillOpen(ctx: UploadContext, upload: ImageRow): ImageRow {
  if ((upload.expiresAt ?? 0) <= ctx.now()) throw new TesseraError('UPLOAD_NOT_FOUND', `No open upload has id "${upload.uploadId}".`);
  return upload;
}

export function requireLiveDatanodes({ registry, config }: UploadContext): void {
  const live = registry.eligible().length;
  if (live < config.replicationFactor) {
    throw new TesseraError(
      'INSUFFICIENT_DATANODES',
      `Needs ${config.replicationFactor} live datanodes; ${live} ${live === 1 ? 'is' : 'are'} live.`,
    );
  }
}

/** recordOrRelease for a fragment an upload wrote to `placed`, the deleter kicked when its copies are released. */
export const recordWrittenFragment = <T>(ctx: UploadContext, fragmentId: string, placed: string[], record: () => Promise<T>): Promise<T> =>
  recordOrRelease(ctx, fragmentId, placed, record, () => void ctx.deleter.kick());

/** The ImageStored event of an upload, to send with the change that completes it. */
export const storedNotice = ({ events }: UploadContext, upload: ImageRow): EventNotice =>
  events.notice({
    kind: 'ImageStored',
    message: `Image "${upload.name}" stored (${upload.size} bytes).`,
    name: upload.name,
    size: upload.size,
  });

/**
 * The image `upload` became once its completion committed, without reading it back: the
 * completion sets exactly these columns (catalog completeUpload). The one other writer of an open
 * upload's row is fragment 0's media detection (put-fragment.ts's setMedia, after the fragment is
 * recorded): a client that completes before fragment 0 has been answered can get, and have the
 * manifest written with, the row as it was before that (the index itself ends up right).
 */
export const storedRowOf = (upload: ImageRow, sha256: string, createdAt: number): ImageRow => ({
  ...upload,
  state: 'stored',
  uploadId: null,
  expiresAt: null,
  sha256,
  createdAt,
});

/** The image an upload became, logged and announced (`notice`: sent with its completion). */
export function announceStored({ log, events }: UploadContext, image: ImageRow, notice: EventNotice): ImageRow {
  log.info({ image: image.name, size: image.size }, 'image stored');
  events.committed(notice);
  return image;
}
