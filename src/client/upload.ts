// Uploads: a file or stream cut into the coordinator's fragments, K of them in flight, each with
// its own sha256: raw PUT /uploads/{id}/fragments/{index} bodies (binary multipart uploadFragment
// calls on a coordinator without that route, or base64 ones), retried when the failure may pass
// (on the next coordinator when one fails), and resumed from upload(id).receivedFragments when the
// same file is uploaded again.
import { setMaxListeners } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { contentTypeOf } from './content-types.ts';
import { abortError, asClientError, TesseraClientError, throwIfAborted } from './errors.ts';
import { fileFragments, fragmentLength, hashFile, streamFragments, type FragmentReader } from './fragment-source.ts';
import type { HttpTransport } from './http-transport.ts';
import * as Q from './queries.ts';
import { withRetry, type RetryPolicy } from './retry.ts';
import type { ImageSummary, UploadSession } from './types.ts';
import type { UploadFileKey, UploadState } from './upload-state.ts';

export type UploadSource = string | Readable | AsyncIterable<Uint8Array>;

export interface UploadOptions {
  /** The image name; defaults to the file's base name (required for streams). */
  name?: string;
  /** Byte size of a stream source (required for streams; a file's own size is used for paths). */
  size?: number;
  /** Defaults to the type guessed from the name's (or the path's) extension. */
  contentType?: string;
  /** Fragments in flight; memory is about parallel × fragment size. */
  parallel?: number;
  /**
   * How fragments travel: `raw` (default) PUTs each as the request body to
   * /uploads/{id}/fragments/{index}, the coordinator's cheapest path, and moves to `multipart`
   * (uploadFragment with a file part) on a coordinator without that route; `base64` is JSON only.
   */
  transport?: 'raw' | 'multipart' | 'base64';
  /** The whole image's SHA-256 when the caller knows it: the coordinator verifies it at completion. */
  sha256?: string;
  /**
   * Paths only: hash the file in a first pass before beginUpload (one extra read of the whole
   * file before a byte is sent). Default false: the whole-image hash is taken in the same pass
   * that reads the fragments and handed to completeUpload(sha256:), which verifies it before the
   * image becomes visible, so both ways a wrong image is never shown.
   */
  hashFirst?: boolean;
  /** Paths only: continue an earlier interrupted upload of the same file (default true); false aborts it and starts over. */
  resume?: boolean;
  /**
   * Send images no larger than one fragment in a single uploadImage request (one round trip
   * instead of three). Default: yes, unless transport is base64.
   */
  oneShot?: boolean;
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting leaves a chunked upload open: uploading the same file again resumes it. */
  signal?: AbortSignal;
}

export interface UploadProgress {
  phase: 'hashing' | 'uploading';
  name: string;
  uploadId?: string;
  /** Bytes hashed (hashing) or stored on the cluster, the fragments of an earlier run included (uploading). */
  bytesDone: number;
  totalBytes: number;
  fragmentsDone: number;
  fragmentCount: number;
  /** Fragments this call has sent so far. */
  sentFragments: number;
  resumed: boolean;
  /** The fragment that was just stored; absent in the first report of a phase. */
  index?: number;
}

export interface UploadResult {
  image: ImageSummary;
  /** null for a one-shot upload. */
  uploadId: string | null;
  /** An earlier run's fragments were kept. */
  resumed: boolean;
  fragmentCount: number;
  /** Fragments this call sent (not counting retries of the same fragment). */
  sentFragments: number;
  /** Fragments already stored by an earlier run. */
  skippedFragments: number;
  /** Requests that were sent again after a transient failure. */
  retries: number;
}

export interface UploadDeps {
  transport: HttpTransport;
  /** The resume ledger; without it nothing is resumed. */
  state?: UploadState;
  retry?: RetryPolicy;
  /** The cluster's fragment size (cached by the caller): decides the one-shot path. */
  clusterFragmentSize: () => Promise<number>;
}

const MAX_PARALLEL = 64;

function checkOptions(parallel: number, transport: string) {
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) {
    throw new TesseraClientError('BAD_USER_INPUT', `parallel must be a whole number from 1 to ${MAX_PARALLEL} (got ${parallel}).`);
  }
  if (transport !== 'raw' && transport !== 'multipart' && transport !== 'base64')
    throw new TesseraClientError('BAD_USER_INPUT', `transport must be "raw", "multipart" or "base64" (got "${transport}").`);
}

export async function upload(deps: UploadDeps, source: UploadSource, options: UploadOptions = {}): Promise<UploadResult> {
  const { parallel = 4, transport = 'raw' } = options;
  checkOptions(parallel, transport);
  throwIfAborted(options.signal);
  if (typeof source === 'string') return uploadPath(deps, source, options);
  const { name, size } = options;
  if (!name) throw new TesseraClientError('BAD_USER_INPUT', 'A stream upload needs a name.');
  if (!Number.isSafeInteger(size) || size! < 1)
    throw new TesseraClientError('BAD_USER_INPUT', 'A stream upload needs its size in bytes (at least 1).');
  const contentType = options.contentType ?? contentTypeOf(name);
  const stream = source as AsyncIterable<Uint8Array>;
  if (await wantsOneShot(deps, options, size!)) {
    const layout = { size: size!, fragmentSize: size!, fragmentCount: 1 };
    const { data, sha256 } = (await streamFragments(stream, layout).next(Buffer.allocUnsafe(size!)))!;
    return uploadOneShot(deps, name, { data, sha256 }, contentType, options);
  }
  const session = await beginUpload(deps, { name, size: size!, contentType, sha256: options.sha256 }, options.signal);
  const reader = streamFragments(stream, session);
  return sendAndComplete(deps, { session, reader, name, resumed: false, skipped: 0, serverHasSha: Boolean(options.sha256), options });
}

async function wantsOneShot(deps: UploadDeps, options: UploadOptions, size: number): Promise<boolean> {
  if (options.oneShot === false || (options.oneShot === undefined && options.transport === 'base64')) return false;
  return size <= (await deps.clusterFragmentSize());
}

/** The open upload of this very file from an earlier run, if it is still there; frees the name from our stale ones. */
async function resumableSession(
  deps: UploadDeps,
  key: UploadFileKey,
  resume: boolean,
  signal?: AbortSignal,
): Promise<{ session?: UploadSession; serverHasSha: boolean }> {
  const { state, transport } = deps;
  if (!state) return { serverHasSha: false };
  const { entry, stale } = await state.lookup(key);
  // Our own open uploads of another version of the file (or of this one, when starting
  // over) hold the name: free it.
  for (const old of resume || !entry ? stale : [...stale, entry]) {
    await transport.graphql(Q.ABORT_UPLOAD, { uploadId: old.uploadId }, { signal }).catch(() => {});
    await state.remove(old.uploadId);
  }
  if (!entry || !resume) return { serverHasSha: false };
  const found = await transport.graphql<{ upload: UploadSession | null }>(Q.UPLOAD_SESSION, { id: entry.uploadId }, { signal });
  if (found.upload && found.upload.name === key.name && found.upload.size === key.size)
    return { session: found.upload, serverHasSha: Boolean(entry.sha256) };
  await state.remove(entry.uploadId); // completed, aborted or expired: start over
  return { serverHasSha: false };
}

async function uploadPath(deps: UploadDeps, path: string, options: UploadOptions): Promise<UploadResult> {
  const { state, transport } = deps;
  const { signal, hashFirst = false, resume = true } = options;
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TesseraClientError('BAD_USER_INPUT', `Cannot read ${path}: ${e.code ?? e.message}`, { cause: err });
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw new TesseraClientError('BAD_USER_INPUT', `${path} is not a regular file.`);
    if (stat.size < 1) throw new TesseraClientError('BAD_USER_INPUT', `${path} is empty; an image holds at least one byte.`);
    const name = options.name ?? basename(path);
    const contentType = options.contentType ?? contentTypeOf(name) ?? contentTypeOf(path);
    const key: UploadFileKey = { url: transport.clusterKey, path: resolve(path), size: stat.size, mtimeMs: stat.mtimeMs, name };

    let { session, serverHasSha } = await resumableSession(deps, key, resume, signal);
    if (!session && (await wantsOneShot(deps, options, stat.size))) {
      const { data, sha256 } = (await fileFragments(file, { size: stat.size, fragmentSize: stat.size, fragmentCount: 1 }, [0]).next(
        Buffer.allocUnsafe(stat.size),
      ))!;
      return await uploadOneShot(deps, name, { data, sha256 }, contentType, options);
    }

    const resumed = session !== undefined;
    if (!session) {
      let sha256 = options.sha256;
      if (!sha256 && hashFirst) {
        let hashed = 0;
        const report = (n: number) => {
          hashed += n;
          options.onProgress?.({
            phase: 'hashing',
            name,
            bytesDone: hashed,
            totalBytes: stat.size,
            fragmentsDone: 0,
            fragmentCount: 0,
            sentFragments: 0,
            resumed: false,
          });
        };
        report(0);
        sha256 = await hashFile(file, stat.size, signal, report);
      }
      session = await beginUpload(deps, { name, size: stat.size, contentType, sha256 }, signal);
      serverHasSha = Boolean(sha256);
      await state?.save({ ...key, uploadId: session.id, sha256: sha256 ?? null, startedAt: new Date().toISOString() });
    }

    const received = new Set(session.receivedFragments);
    const toSend = Array.from({ length: session.fragmentCount }, (_, i) => i).filter((i) => !received.has(i));
    // Without a hash given at beginUpload, read every byte in order (the stored fragments of an
    // earlier run too) so the whole-image hash comes out of the same pass for completeUpload.
    const reader = fileFragments(file, session, toSend, { hashWhole: !serverHasSha });
    const assertUnchanged = async () => {
      const now = await file.stat();
      if (now.size !== stat.size || now.mtimeMs !== stat.mtimeMs) {
        throw new TesseraClientError('FILE_CHANGED', `${path} changed during the upload; upload it again to start over.`, {
          uploadId: session!.id,
        });
      }
    };
    const result = await sendAndComplete(deps, {
      session,
      reader,
      name,
      resumed,
      skipped: received.size,
      serverHasSha,
      options,
      beforeComplete: assertUnchanged,
    });
    return result;
  } finally {
    await file.close();
  }
}

async function beginUpload(
  deps: UploadDeps,
  input: { name: string; size: number; contentType?: string; sha256?: string },
  signal?: AbortSignal,
): Promise<UploadSession> {
  // Not idempotent (a lost answer leaves the name reserved), so only a refusal that stored
  // nothing is retried: no live datanodes, or a connection that never opened.
  const { beginUpload } = await withRetry(
    () => deps.transport.graphql<{ beginUpload: UploadSession }>(Q.BEGIN_UPLOAD, { input }, { signal }),
    {
      policy: deps.retry,
      signal,
      shouldRetry: (e) => e.code === 'INSUFFICIENT_DATANODES' || (e.code === 'NETWORK_ERROR' && /ECONNREFUSED/.test(e.message)),
    },
  );
  return beginUpload;
}

/** Retries `call`; after a lost answer, `settled` says whether the first attempt went through after all. */
async function retryIdempotent<T>(
  deps: UploadDeps,
  call: () => Promise<T>,
  settled: (err: TesseraClientError) => Promise<T | undefined>,
  signal?: AbortSignal,
): Promise<{ value: T; retries: number }> {
  let retries = 0;
  let lostAnswer = false;
  const value = await withRetry(
    async () => {
      try {
        return await call();
      } catch (raw) {
        const err = asClientError(raw, signal);
        if (lostAnswer) {
          const done = await settled(err);
          if (done !== undefined) return done;
        }
        // A lost answer, or a database cut mid-COMMIT (METADATA_UNAVAILABLE): either way the
        // attempt may have gone through, so a refusal of the retry is checked against that.
        if (err.code === 'NETWORK_ERROR' || err.code === 'METADATA_UNAVAILABLE') lostAnswer = true;
        throw err;
      }
    },
    { policy: deps.retry, signal, onRetry: () => retries++ },
  );
  return { value, retries };
}

async function uploadOneShot(
  deps: UploadDeps,
  name: string,
  { data, sha256 }: { data: Buffer; sha256: string },
  contentType: string | undefined,
  options: UploadOptions,
): Promise<UploadResult> {
  const { signal } = options;
  if (options.sha256 && options.sha256 !== sha256)
    throw new TesseraClientError('CHECKSUM_MISMATCH', `The bytes hash to ${sha256}, not the given ${options.sha256}.`);
  const report = (bytesDone: number, fragmentsDone: number, index?: number) =>
    options.onProgress?.({
      phase: 'uploading',
      name,
      bytesDone,
      totalBytes: data.length,
      fragmentsDone,
      fragmentCount: 1,
      sentFragments: fragmentsDone,
      resumed: false,
      index,
    });
  report(0, 0);
  const { value: image, retries } = await retryIdempotent(
    deps,
    async () =>
      (
        await deps.transport.graphqlMultipart<{ uploadImage: ImageSummary }>(
          Q.UPLOAD_IMAGE,
          { name, file: null, contentType: contentType ?? null },
          [{ variable: 'variables.file', data, filename: name, contentType }],
          { signal },
        )
      ).uploadImage,
    async (err) => {
      if (err.code !== 'IMAGE_ALREADY_EXISTS') return undefined;
      const { image } = await deps.transport.graphql<{ image: ImageSummary | null }>(Q.IMAGE_SUMMARY, { name }, { signal });
      return image?.sha256 === sha256 ? image : undefined;
    },
    signal,
  );
  await verifyStored(deps, image, sha256, signal);
  report(data.length, 1, 0);
  return { image, uploadId: null, resumed: false, fragmentCount: 1, sentFragments: 1, skippedFragments: 0, retries };
}

/** The coordinator's whole-image hash against ours; a mismatch must not stay visible. */
async function verifyStored(deps: UploadDeps, image: ImageSummary, sha256: string, signal?: AbortSignal): Promise<void> {
  if (image.sha256 === sha256) return;
  await deps.transport.graphql(Q.DELETE_IMAGE, { name: image.name }, { signal }).catch(() => {});
  throw new TesseraClientError(
    'CHECKSUM_MISMATCH',
    `The stored image hashes to ${image.sha256}, the local bytes to ${sha256}; it was deleted.`,
  );
}

interface SendPlan {
  session: UploadSession;
  reader: FragmentReader;
  name: string;
  resumed: boolean;
  skipped: number;
  serverHasSha: boolean;
  options: UploadOptions;
  beforeComplete?: () => Promise<void>;
  /** Set once the coordinator turned out to have no raw fragment route: multipart from then on. */
  noRawRoute?: boolean;
}

/** What an upload has stored so far, reported through onProgress. */
function progressOf(plan: SendPlan) {
  const { session, name, resumed, skipped, options } = plan;
  const tally = { bytesDone: 0, fragmentsDone: skipped, sentFragments: 0 };
  for (const i of new Set(session.receivedFragments)) tally.bytesDone += fragmentLength(session, i);
  const report = (index?: number) =>
    options.onProgress?.({
      phase: 'uploading',
      name,
      uploadId: session.id,
      ...tally,
      totalBytes: session.size,
      fragmentCount: session.fragmentCount,
      resumed,
      index,
    });
  return {
    tally,
    report,
    stored(index: number, bytes: number) {
      tally.sentFragments++;
      tally.fragmentsDone++;
      tally.bytesDone += bytes;
      report(index);
    },
  };
}

/** A coordinator that predates PUT /uploads/{id}/fragments/{index} answers this (Yoga's 404 off /graphql). */
const isMissingRoute = (err: unknown) =>
  err instanceof TesseraClientError &&
  (err.code === 'NOT_FOUND' ||
    err.code === 'METHOD_NOT_ALLOWED' ||
    (err.code === 'HTTP_ERROR' && (err.status === 404 || err.status === 405)));

/** One fragment as a raw PUT, else as uploadFragment; checked against the coordinator's receipt. */
async function sendFragment(
  deps: UploadDeps,
  plan: SendPlan,
  index: number,
  data: Buffer,
  sha256: string,
  signal: AbortSignal,
): Promise<void> {
  const uploadId = plan.session.id;
  const transport = plan.options.transport ?? 'raw';
  if (transport === 'raw' && !plan.noRawRoute) {
    try {
      const path = `/uploads/${encodeURIComponent(uploadId)}/fragments/${index}`;
      const receipt = await deps.transport.put<{ sha256: string }>(path, data, { 'x-content-sha256': sha256 }, { signal });
      return checkReceipt(index, receipt.sha256, sha256);
    } catch (err) {
      if (!isMissingRoute(err)) throw err;
      plan.noRawRoute = true;
    }
  }
  const receipt =
    transport !== 'base64'
      ? (
          await deps.transport.graphqlMultipart<{ uploadFragment: { sha256: string } }>(
            Q.UPLOAD_FRAGMENT_FILE,
            { uploadId, index, file: null, sha256 },
            [{ variable: 'variables.file', data, filename: `fragment-${index}` }],
            { signal },
          )
        ).uploadFragment
      : (
          await deps.transport.graphql<{ uploadFragment: { sha256: string } }>(
            Q.UPLOAD_FRAGMENT_BASE64,
            { uploadId, index, data: data.toString('base64'), sha256 },
            { signal },
          )
        ).uploadFragment;
  checkReceipt(index, receipt.sha256, sha256);
}

function checkReceipt(index: number, stored: string, sent: string): void {
  if (stored !== sent)
    throw new TesseraClientError('CHECKSUM_MISMATCH', `Fragment ${index} was stored with sha256 ${stored}, not ${sent}.`);
}

/** K workers send the reader's fragments; one failure stops the others, the caller's abort stops them all. Resolves to the retries. */
async function sendFragments(deps: UploadDeps, plan: SendPlan, progress: ReturnType<typeof progressOf>): Promise<number> {
  const { session, reader, skipped, options } = plan;
  const { parallel = 4, signal } = options;
  let retries = 0;
  const stop = new AbortController();
  // Every request in flight listens on it: K of them are expected, not a leak.
  setMaxListeners(parallel * 2 + 16, stop.signal);
  const onAbort = () => stop.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // After a move to another coordinator, ask it once which fragments it has: one whose answer the
  // failed coordinator stored but never sent is not sent again. (One URL: never asked.)
  let failovers = deps.transport.failovers;
  let onNewCoordinator: Promise<Set<number>> | undefined;
  const storedAlready = async (index: number): Promise<boolean> => {
    if (deps.transport.failovers !== failovers) {
      failovers = deps.transport.failovers;
      onNewCoordinator = deps.transport
        .graphql<{ upload: UploadSession | null }>(Q.UPLOAD_SESSION, { id: session.id }, { signal: stop.signal })
        .then(
          ({ upload }) => new Set(upload?.receivedFragments ?? []),
          () => new Set<number>(), // unknown: send it, as without a failover
        );
    }
    return onNewCoordinator !== undefined && (await onNewCoordinator).has(index);
  };
  const worker = async () => {
    // Each worker owns one fragment-sized buffer for the whole upload: memory is K fragments.
    const buffer = Buffer.allocUnsafe(session.fragmentSize);
    for (;;) {
      if (stop.signal.aborted) return;
      const fragment = await reader.next(buffer);
      if (!fragment) return;
      const { sha256 } = fragment;
      await withRetry(
        async () => {
          if (!(await storedAlready(fragment.index))) await sendFragment(deps, plan, fragment.index, fragment.data, sha256, stop.signal);
        },
        {
          policy: deps.retry,
          signal: stop.signal,
          onRetry: () => retries++,
        },
      );
      progress.stored(fragment.index, fragment.data.length);
    }
  };
  try {
    // At least one worker: a hashing reader must still read the stored fragments.
    const workers = Math.max(1, Math.min(parallel, session.fragmentCount - skipped));
    const outcomes = await Promise.allSettled(
      Array.from({ length: workers }, () =>
        worker().catch((err) => {
          stop.abort(err);
          throw err;
        }),
      ),
    );
    const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [asClientError(o.reason, stop.signal)] : []));
    if (signal?.aborted) throw abortError(signal);
    if (failures.length > 0) throw failures.find((e) => e.code !== 'ABORTED') ?? failures[0];
    return retries;
  } catch (err) {
    const e = asClientError(err, signal);
    e.uploadId ??= session.id;
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** completeUpload, retried when its answer may have been lost; a wrong whole-image hash drops the upload. */
async function completeSession(
  deps: UploadDeps,
  plan: SendPlan,
  localSha: string | undefined,
): Promise<{ image: ImageSummary; retries: number }> {
  const {
    session,
    name,
    options: { signal },
  } = plan;
  const uploadId = session.id;
  try {
    const done = await retryIdempotent(
      deps,
      // The coordinator checks localSha against the fragments before the image becomes visible.
      async () =>
        (
          await deps.transport.graphql<{ completeUpload: ImageSummary }>(
            Q.COMPLETE_UPLOAD,
            { uploadId, sha256: localSha ?? null },
            { signal },
          )
        ).completeUpload,
      async (err) => {
        // The first completeUpload went through but its answer was lost.
        if (err.code !== 'UPLOAD_NOT_FOUND') return undefined;
        const { image } = await deps.transport.graphql<{ image: ImageSummary | null }>(Q.IMAGE_SUMMARY, { name }, { signal });
        return image && image.size === session.size && (!localSha || image.sha256 === localSha) ? image : undefined;
      },
      signal,
    );
    return { image: done.value, retries: done.retries };
  } catch (err) {
    const e = asClientError(err, signal);
    e.uploadId ??= uploadId;
    // A wrong whole-image hash cannot be fixed by resuming: drop the upload and its fragments.
    if (e.code === 'CHECKSUM_MISMATCH') await deps.transport.graphql(Q.ABORT_UPLOAD, { uploadId }).catch(() => {});
    if (e.code === 'CHECKSUM_MISMATCH' || e.code === 'UPLOAD_NOT_FOUND') await deps.state?.remove(uploadId);
    throw e;
  }
}

async function sendAndComplete(deps: UploadDeps, plan: SendPlan): Promise<UploadResult> {
  const { session, resumed, skipped, options } = plan;
  const progress = progressOf(plan);
  progress.report();
  let retries = await sendFragments(deps, plan, progress);
  await plan.beforeComplete?.();
  const localSha = plan.serverHasSha ? undefined : plan.reader.digest();
  const done = await completeSession(deps, plan, localSha);
  retries += done.retries;
  await deps.state?.remove(session.id);
  if (localSha) await verifyStored(deps, done.image, localSha, options.signal);
  return {
    image: done.image,
    uploadId: session.id,
    resumed,
    fragmentCount: session.fragmentCount,
    sentFragments: progress.tally.sentFragments,
    skippedFragments: skipped,
    retries,
  };
}
