// Chunked uploads, durable: sessions in the index, each fragment
// hashed once, replicated to R datanodes and counted only once every replica is written;
// completion flips the upload into a visible image in one transaction.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from './config.ts';
import { badInput, TesseraError } from './errors.ts';
import type { EventBus } from './events.ts';
import { createRunningImageHash, knownImageHash, type RunningImageHash } from './image-hash.ts';
import { createWindowBudget, WINDOW_BUDGET_BYTES } from './memory-budget.ts';
import type { Catalog, ImageRow } from './metadata/catalog.ts';
import { assertImageName } from './names.ts';
import { mediaTypeProblem } from './media-types.ts';
import type { Replicas } from './cluster/replicas.ts';
import { byteLength, sha256Hex, sliceBytes, type Bytes } from './bytes.ts';
import type { Registry } from './cluster/registry.ts';
import type { ReplicaDeleter } from './cluster/replica-deletions.ts';
import { SHA256_HEX_PATTERN, type ImageManifest } from './shared/datanode-api.ts';
import { manifestOf, type ImageRecords } from './cluster/image-records.ts';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

export interface BeginUploadInput {
  name: string;
  size: number;
  contentType?: string | null;
  sha256?: string | null;
}

export interface FragmentReceipt {
  index: number;
  size: number;
  sha256: string;
  replicas: string[];
}

/** Expected byte size of fragment `index` of an upload. */
export const fragmentSizeAt = (upload: Pick<ImageRow, 'size' | 'fragmentSize' | 'fragmentCount'>, index: number) =>
  index < upload.fragmentCount - 1 ? upload.fragmentSize : upload.size - (upload.fragmentCount - 1) * upload.fragmentSize;

export const newFragmentId = () => randomBytes(16).toString('base64url');

function assertSha256(value: string | null | undefined, what: string): void {
  if (value != null && !SHA256_HEX_PATTERN.test(value)) throw badInput(`${what} must be 64 lowercase hex digits.`);
}

function assertContentType(value: string | null | undefined): void {
  if (value == null) return;
  const problem = mediaTypeProblem(value);
  // JSON.stringify: the refused value is shown escaped and cut, never echoed raw.
  if (problem) throw badInput(`contentType ${JSON.stringify(value.slice(0, 80))}${value.length > 80 ? '…' : ''} is not an acceptable media type: it ${problem}.`);
}

export function createUploads({ config, catalog, registry, replicas, records, deleter, events, log, now = Date.now }: {
  config: CoordinatorConfig;
  catalog: Catalog;
  registry: Registry;
  replicas: Replicas;
  records: ImageRecords;
  deleter: ReplicaDeleter;
  events: EventBus;
  log: Logger;
  now?: () => number;
}) {
  const running = new Map<number, RunningImageHash>();
  // Uploads that never send fragment 0 would otherwise each pin a full window until they expire.
  const windows = createWindowBudget(WINDOW_BUDGET_BYTES);
  /** Forgets an upload's running hash, giving its window back to the budget. */
  const dropRunning = (id: number) => {
    running.get(id)?.digest();
    running.delete(id);
  };
  const ttlMs = config.uploadTtlSec * 1000;

  const requireLiveDatanodes = () => {
    const live = registry.eligible().length;
    if (live < config.replicationFactor) {
      throw new TesseraError('INSUFFICIENT_DATANODES', `Needs ${config.replicationFactor} live datanodes; ${live} ${live === 1 ? 'is' : 'are'} live.`);
    }
  };

  /** The open upload, or UPLOAD_NOT_FOUND (also once it has expired, swept or not). */
  function openUpload(uploadId: string): ImageRow {
    const upload = catalog.uploadById(uploadId);
    if (!upload || (upload.expiresAt ?? 0) <= now()) throw new TesseraError('UPLOAD_NOT_FOUND', `No open upload has id "${uploadId}".`);
    return upload;
  }

  function sweepExpired(): number {
    const expired = catalog.expiredUploads(now());
    for (const upload of expired) {
      if (!catalog.deleteImage(upload.id, now(), 'upload-expired')) continue;
      dropRunning(upload.id);
      log.info({ upload: upload.uploadId, image: upload.name }, 'upload expired');
      events.emit({ kind: 'UploadExpired', message: `Upload of "${upload.name}" expired.`, name: upload.name, uploadId: upload.uploadId! });
    }
    if (expired.length > 0) void deleter.kick();
    return expired.length;
  }

  async function wholeImageHash(upload: ImageRow, fragments: { idx: number; id: string; sha256: string }[]): Promise<string> {
    // Taken out of the map: a concurrent completeUpload of the same upload must not push the
    // same fragments into it too (it starts its own hash from 0).
    let hash = running.get(upload.id);
    running.delete(upload.id);
    if (!hash?.usable) hash = createRunningImageHash(0);
    // Catch up from the datanodes where the running hash stopped (after a restart: from 0).
    try {
      while (hash.next < upload.fragmentCount) {
        const f = fragments[hash.next];
        hash.push(await replicas.read({ ...f, replicas: catalog.replicasOf(f.id) }));
      }
    } catch (err) {
      hash.digest(); // gives its window back to the budget
      throw err;
    }
    return hash.digest();
  }

  function assertFragmentSize(upload: ImageRow, index: number, size: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= upload.fragmentCount) {
      throw new TesseraError('INVALID_FRAGMENT', `Fragment index ${index} is outside 0..${upload.fragmentCount - 1}.`);
    }
    const expected = fragmentSizeAt(upload, index);
    if (size !== expected) throw new TesseraError('INVALID_FRAGMENT', `Fragment ${index} must be ${expected} bytes (got ${size}).`);
  }

  function assertWholeSize(size: number): void {
    if (size > config.maxUploadImageSize) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `uploadImage takes files up to ${config.maxUploadImageSize} bytes; use the chunked upload for larger ones.`);
    }
  }

  /**
   * `manifestAt`: uploadImage of a one-fragment image, whose manifest (created at that time) is
   * known before its one fragment is written: it travels with the fragment (no second request).
   */
  async function putFragment(uploadId: string, index: number, data: Bytes, sha256?: string | null, manifestAt?: number): Promise<FragmentReceipt & { manifest?: ImageManifest }> {
    assertSha256(sha256, 'sha256');
    const upload = openUpload(uploadId);
    const size = byteLength(data);
    assertFragmentSize(upload, index, size);
    requireLiveDatanodes();
    // A given sha256 goes to the datanodes as it is: each one hashes what it receives and refuses
    // bytes that differ (CHECKSUM_MISMATCH), so the coordinator's one pass over the bytes is the
    // whole-image hash. Without one, the coordinator hashes the fragment itself.
    const digest = sha256 ?? sha256Hex(data);

    const fragmentId = newFragmentId();
    const manifest = manifestAt !== undefined && upload.fragmentCount === 1
      ? manifestOf(upload, digest, manifestAt, [{ id: fragmentId, idx: 0, size, sha256: digest }])
      : undefined;
    let placed: string[];
    try {
      placed = await replicas.write(fragmentId, data, digest, config.replicationFactor, new Set(), manifest);
    } catch (err) {
      if (sha256 && err instanceof TesseraError && err.code === 'CHECKSUM_MISMATCH') {
        throw new TesseraError('CHECKSUM_MISMATCH', `Fragment ${index}: sha256 ${sha256} was given; the bytes received hash to something else.`);
      }
      throw err;
    }
    let recorded: false | 'new' | 'replaced' = false;
    try {
      recorded = catalog.recordFragment({ id: fragmentId, imageId: upload.id, idx: index, size, sha256: digest }, placed, now() + ttlMs, now());
    } finally {
      if (!recorded) {
        catalog.releaseWriteIntents(fragmentId, placed, now()); // written but never counted: delete the copies
        void deleter.kick();
      }
    }
    if (!recorded) {
      throw new TesseraError('UPLOAD_NOT_FOUND', `Upload "${uploadId}" was completed, aborted or expired while fragment ${index} was stored.`);
    }
    if (upload.fragmentCount === 1) running.set(upload.id, knownImageHash(digest));
    else {
      let hash = running.get(upload.id);
      if (!hash) running.set(upload.id, (hash = createRunningImageHash(config.fragmentSize * 8, windows)));
      hash.offer(index, data);
    }
    if (recorded === 'replaced') void deleter.kick(); // the replicas of the fragment it replaced
    return { index, size, sha256: digest, replicas: placed, manifest };
  }

  function begin(input: BeginUploadInput): ImageRow {
    assertImageName(input.name);
    if (!Number.isSafeInteger(input.size) || input.size < 1) throw badInput(`size must be at least 1 (got ${input.size}).`);
    if (input.size > config.maxImageSize) {
      throw new TesseraError('PAYLOAD_TOO_LARGE', `${input.size} bytes is more than the maximum image size of ${config.maxImageSize}.`);
    }
    assertSha256(input.sha256, 'sha256');
    assertContentType(input.contentType);
    requireLiveDatanodes();
    const t = now();
    const row = {
      name: input.name,
      uploadId: randomBytes(12).toString('base64url'),
      size: input.size,
      contentType: input.contentType ?? DEFAULT_CONTENT_TYPE,
      sha256: input.sha256 ?? null,
      fragmentSize: config.fragmentSize,
      fragmentCount: Math.ceil(input.size / config.fragmentSize),
      createdAt: t,
      expiresAt: t + ttlMs,
    };
    try {
      return catalog.insertUpload(row);
    } catch (err) {
      // An expired upload must not hold the name: swept here, on a clash, rather than before every insert.
      if (err instanceof TesseraError && err.code === 'IMAGE_ALREADY_EXISTS' && sweepExpired() > 0) return catalog.insertUpload(row);
      throw err;
    }
  }

  /**
   * `sha256`: the whole image's hash, when the client learnt it only while sending (beyond
   * beginUpload's). `written`: a manifest already on the datanodes (sent with the fragment).
   */
  async function complete(uploadId: string, sha256Given?: string | null, written?: ImageManifest): Promise<ImageRow> {
    assertSha256(sha256Given, 'sha256');
    for (;;) {
      const upload = openUpload(uploadId);
      const fragments = catalog.fragments(upload.id);
      if (fragments.length < upload.fragmentCount) {
        const have = new Set(fragments.map((f) => f.idx));
        const missing = Array.from({ length: upload.fragmentCount }, (_, i) => i).filter((i) => !have.has(i));
        const shown = missing.slice(0, 20).join(', ') + (missing.length > 20 ? `, … (${missing.length} in all)` : '');
        throw new TesseraError('UPLOAD_INCOMPLETE', `Upload "${uploadId}" is missing fragment${missing.length === 1 ? '' : 's'} ${shown}.`, { missing });
      }
      const sha256 = await wholeImageHash(upload, fragments);
      running.delete(upload.id);
      for (const announced of [upload.sha256, sha256Given]) {
        if (announced && announced !== sha256) {
          throw new TesseraError('CHECKSUM_MISMATCH', `The image hashes to ${sha256}, not the announced ${announced}; resend the wrong fragments and complete again.`);
        }
      }
      // The datanodes learn what the image is before the client hears it is stored: lose the
      // index after this answer and a rebuild still finds the image.
      const current = written && written.sha256 === sha256 && written.fragments.length === fragments.length && written.fragments.every((f, i) => f.id === fragments[i].id) ? written : undefined;
      const createdAt = current?.createdAt ?? now();
      if (!current) {
        const holders = fragments.flatMap((f) => catalog.replicasOf(f.id));
        await records.writeManifest(manifestOf(upload, sha256, createdAt, fragments), holders);
      }
      const outcome = catalog.completeUpload(upload.id, fragments.map((f) => f.id), sha256, createdAt);
      if (outcome === 'changed') continue; // a fragment was replaced while we hashed: hash again
      if (outcome === 'gone') throw new TesseraError('UPLOAD_NOT_FOUND', `Upload "${uploadId}" was aborted or expired.`);
      return announceStored(upload.id);
    }
  }

  function announceStored(imageId: number): ImageRow {
    const image = catalog.imageById(imageId)!;
    log.info({ image: image.name, size: image.size }, 'image stored');
    events.emit({ kind: 'ImageStored', message: `Image "${image.name}" stored (${image.size} bytes).`, name: image.name, size: image.size });
    return image;
  }

  /**
   * uploadWhole of a one-fragment image (every small image): the fragment is the image, so its
   * hash is the image's, and recording it completes the upload in the same transaction.
   */
  async function storeOnlyFragment(upload: ImageRow, data: Bytes): Promise<ImageRow> {
    requireLiveDatanodes();
    const size = byteLength(data);
    const digest = sha256Hex(data);
    const fragmentId = newFragmentId();
    // Its manifest travels with the fragment: the datanodes know the image before the client does.
    const createdAt = now();
    const manifest = manifestOf(upload, digest, createdAt, [{ id: fragmentId, idx: 0, size, sha256: digest }]);
    const placed = await replicas.write(fragmentId, data, digest, config.replicationFactor, new Set(), manifest);
    let outcome: ReturnType<Catalog['recordOnlyFragmentAndComplete']> = false;
    try {
      outcome = catalog.recordOnlyFragmentAndComplete({ id: fragmentId, imageId: upload.id, idx: 0, size, sha256: digest }, placed, digest, createdAt);
    } finally {
      if (!outcome) {
        catalog.releaseWriteIntents(fragmentId, placed, now()); // written but never counted: delete the copies
        void deleter.kick();
      }
    }
    if (outcome !== 'done') throw new TesseraError('UPLOAD_NOT_FOUND', `Upload "${upload.uploadId}" was aborted or expired while it was stored.`);
    return announceStored(upload.id);
  }

  function abort(uploadId: string): boolean {
    const upload = openUpload(uploadId);
    catalog.deleteImage(upload.id, now(), 'upload-aborted');
    dropRunning(upload.id);
    void deleter.kick();
    return true;
  }

  /** The one-shot upload: the whole file is already in memory (Yoga buffers multipart bodies). */
  async function uploadWhole(name: string, data: Bytes, contentType?: string | null): Promise<ImageRow> {
    const size = byteLength(data);
    assertWholeSize(size);
    const upload = begin({ name, size, contentType });
    const uploadId = upload.uploadId!;
    try {
      if (upload.fragmentCount === 1) return await storeOnlyFragment(upload, data);
      const inFlight = 4;
      for (let first = 0; first < upload.fragmentCount; first += inFlight) {
        const batch = [];
        for (let idx = first; idx < Math.min(first + inFlight, upload.fragmentCount); idx++) {
          const offset = idx * upload.fragmentSize;
          batch.push(putFragment(uploadId, idx, sliceBytes(data, offset, offset + fragmentSizeAt(upload, idx))));
        }
        await Promise.all(batch);
      }
      return await complete(uploadId);
    } catch (err) {
      if (catalog.uploadById(uploadId)) abort(uploadId);
      throw err;
    }
  }

  return {
    sweepExpired,
    openUpload,
    /** The open upload or undefined (unknown, completed, aborted or expired). */
    find(uploadId: string): ImageRow | undefined {
      const upload = catalog.uploadById(uploadId);
      return upload && (upload.expiresAt ?? 0) > now() ? upload : undefined;
    },
    begin,
    assertFragmentSize,
    assertWholeSize,
    putFragment,
    complete,
    abort,
    uploadWhole,
  };
}

export type Uploads = ReturnType<typeof createUploads>;
