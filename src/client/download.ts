// Downloads through GET /images/{name}: streamed to a temporary file beside the target, hashed on
// the way and checked against the ETag (the image's sha256), then renamed into place, so a
// target path only ever holds a complete, verified image. Since the file is checked here, the
// coordinator is told it need not hash the fragments too; a mismatch fetches once more with its
// check. Given several coordinators, a body cut
// short by a failing one continues from the next by Range (If-Range: the same image only).
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import { asClientError, TesseraClientError } from './errors.ts';
import type { HttpTransport } from './http-transport.ts';
import * as Q from './queries.ts';
import { CLIENT_CHECKS_HEADER, imagePath } from '../image-paths.ts';
import { createSha256Tally, Sha256Verifier } from './sha256-verifier.ts';
import type { ImageSummary } from './types.ts';

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?: (progress: { bytesDone: number; totalBytes: number }) => void;
}

export interface DownloadResult {
  name: string;
  size: number;
  sha256: string;
  contentType: string;
}

export interface FileDownloadResult extends DownloadResult {
  /** Absolute path of the written file. */
  path: string;
}

// Errors of the local target, reported as the user's to fix rather than as network trouble.
const LOCAL_FILE_ERRORS = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ENOSPC', 'EROFS', 'EDQUOT']);

const WRITE_BATCH = 1024 * 1024;

const ETAG = /^(?:W\/)?"?([0-9a-f]{64})"?$/;

/** Opens the image's body and what it must hash to: the ETag, or Image.sha256 if a server sends none. */
async function openImage(transport: HttpTransport, name: string, signal?: AbortSignal, headers: Record<string, string> = {}) {
  const res: IncomingMessage = await transport.get(imagePath(name), { signal, headers });
  const length = Number(res.headers['content-length']);
  let sha256 = ETAG.exec(res.headers.etag ?? '')?.[1];
  if (!sha256) {
    const { image } = await transport.graphql<{ image: ImageSummary | null }>(Q.IMAGE_SUMMARY, { name }, { signal });
    if (!image) {
      res.destroy();
      throw new TesseraClientError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`);
    }
    sha256 = image.sha256;
  }
  return {
    res,
    sha256,
    size: Number.isSafeInteger(length) ? length : undefined,
    contentType: res.headers['content-type'] ?? 'application/octet-stream',
  };
}

/**
 * The body of `first`; with several coordinators, when the connection breaks off, the rest of
 * the same image (If-Range: its ETag) from the next one, at most once per coordinator. With one
 * coordinator `first` is read as it is (see callers).
 */
async function* resumableBody(
  transport: HttpTransport,
  name: string,
  first: IncomingMessage,
  sha256: string,
  size: number | undefined,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  let res = first;
  let done = 0;
  let resumes = 0;
  try {
    for (;;) {
      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          done += chunk.length;
          yield chunk;
        }
        return;
      } catch (raw) {
        const err = asClientError(raw, signal);
        if (err.code !== 'NETWORK_ERROR' || size === undefined || done >= size || ++resumes > transport.coordinatorCount) throw err;
        transport.lost(res);
        res.destroy();
        const next = await transport
          .get(imagePath(name), { signal, headers: { range: `bytes=${done}-`, 'if-range': `"${sha256}"` } })
          .catch(() => {
            throw err; // no coordinator can continue it: the break is the error to report
          });
        const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(next.headers['content-range'] ?? '');
        if (next.statusCode !== 206 || !range || Number(range[1]) !== done || Number(range[2]) !== size) {
          next.destroy(); // another version of the name, or no range: the bytes so far cannot be continued
          throw err;
        }
        res = next;
      }
    }
  } finally {
    if (!res.complete) res.destroy();
  }
}

/** Streams the image into `destination`; the check comes at the end (the bytes are written by then). */
export async function downloadTo(
  transport: HttpTransport,
  name: string,
  destination: Writable,
  { signal, onProgress, end = true }: DownloadOptions & { end?: boolean } = {},
): Promise<DownloadResult> {
  const { res, sha256, size, contentType } = await openImage(transport, name, signal);
  const verifier = new Sha256Verifier({
    sha256,
    size,
    onBytes: onProgress && ((n) => onProgress({ bytesDone: n, totalBytes: size ?? 0 })),
  });
  const body = transport.coordinatorCount > 1 ? resumableBody(transport, name, res, sha256, size, signal) : res;
  try {
    await pipeline(body, verifier, destination, { signal, end });
  } catch (err) {
    res.destroy();
    throw asClientError(err, signal);
  }
  return { name, size: verifier.bytes, sha256: verifier.sha256!, contentType };
}

/**
 * The image's body for a file download: read off the socket in large reads (raw-get.ts) when the
 * transport can, else through node:http (continued on the next coordinator by Range when one
 * breaks off); either way handed to `onChunk` in order, waiting while its promise is pending.
 */
async function openForFile(transport: HttpTransport, name: string, signal: AbortSignal | undefined, headers: Record<string, string>) {
  const raw = await transport.rawGet(imagePath(name), { signal, headers });
  if (raw !== 'unsupported') {
    const sha256 = ETAG.exec(raw.headers.etag ?? '')?.[1];
    if (sha256) {
      const { headers, length } = raw;
      return {
        sha256,
        size: length,
        contentType: headers['content-type'] ?? 'application/octet-stream',
        pipeTo: raw.pipeTo,
        destroy: raw.destroy,
      };
    }
    raw.destroy(); // no ETag (not a coordinator of ours): the path below asks for the hash
  }
  const { res, sha256, size, contentType } = await openImage(transport, name, signal, headers);
  const body = transport.coordinatorCount > 1 ? resumableBody(transport, name, res, sha256, size, signal) : res;
  return {
    sha256,
    size,
    contentType,
    async pipeTo(onChunk: (chunk: Buffer) => Promise<unknown> | undefined) {
      for await (const chunk of body as AsyncIterable<Buffer>) await onChunk(chunk);
    },
    destroy: () => res.destroy(),
  };
}

/**
 * Gathers chunks into about WRITE_BATCH bytes per writev: socket chunks of 64 KiB written one by
 * one cost four times the syscalls and CPU. One batch is written (on libuv's thread pool) while
 * the next is gathered; `push` answers a promise when the next batch is full and must wait for
 * the one being written, so the reader (and through TCP the sender) is held back and memory stays
 * at two batches.
 */
function batchedWriter(file: FileHandle) {
  let batch: Buffer[] = [];
  let batched = 0;
  // The batch being written, if any: its rejection is taken when it is awaited.
  let writing: Promise<unknown> | undefined;
  const start = (chunks: Buffer[]) => {
    writing = file.writev(chunks);
    writing.catch(() => {});
  };
  return {
    push(chunk: Buffer): Promise<void> | undefined {
      batch.push(chunk);
      batched += chunk.length;
      if (batched < WRITE_BATCH) return undefined;
      const full = batch;
      batch = [];
      batched = 0;
      if (!writing) return void start(full);
      return writing.then(() => start(full));
    },
    /** Writes what is left and waits for every write. */
    async flush() {
      await writing;
      if (batch.length > 0) await file.writev(batch);
    },
    /** Waits for the write in progress, whatever its outcome (before the file is closed). */
    settle: async () => void (await writing?.catch(() => {})),
  };
}

/**
 * Downloads into `output` atomically: a failed or mismatching download leaves no file behind.
 * The first fetch asks the coordinator to skip its per-fragment hashes (the file is checked
 * here); bytes that do not match are fetched once more, hashed by the coordinator, which then
 * passes over a bad replica.
 */
export async function download(
  transport: HttpTransport,
  name: string,
  output: string,
  options: DownloadOptions = {},
): Promise<FileDownloadResult> {
  try {
    return await downloadOnce(transport, name, output, options, { [CLIENT_CHECKS_HEADER]: 'sha256' });
  } catch (err) {
    const e = err as TesseraClientError;
    if (e.code !== 'CHECKSUM_MISMATCH' && e.code !== 'SIZE_MISMATCH') throw err;
    return downloadOnce(transport, name, output, options, {});
  }
}

async function downloadOnce(
  transport: HttpTransport,
  name: string,
  output: string,
  options: DownloadOptions,
  headers: Record<string, string>,
): Promise<FileDownloadResult> {
  const target = resolve(output);
  const body = await openForFile(transport, name, options.signal, headers);
  const { sha256, size, contentType } = body;
  // Same folder as the target, so the rename stays on one filesystem and is atomic.
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tessera-part`);
  const tally = createSha256Tally({
    sha256,
    size,
    onBytes: options.onProgress && ((n) => options.onProgress!({ bytesDone: n, totalBytes: size ?? 0 })),
  });
  let verified: { sha256: string; bytes: number };
  try {
    const file = await open(temp, 'wx');
    const writer = batchedWriter(file);
    try {
      await body.pipeTo((chunk) => {
        tally.update(chunk);
        return writer.push(chunk);
      });
      await writer.flush();
      verified = tally.finish();
    } finally {
      await writer.settle();
      await file.close();
    }
    // No fsync before the rename: like curl -o, a crash may lose the file, never expose half of it as complete.
    await rename(temp, target);
  } catch (err) {
    body.destroy();
    await rm(temp, { force: true });
    const e = err as NodeJS.ErrnoException;
    if (!(err instanceof TesseraClientError) && LOCAL_FILE_ERRORS.has(e?.code ?? '')) {
      throw new TesseraClientError('BAD_USER_INPUT', `Cannot write ${output}: ${e.code ?? e.message}`, { cause: err });
    }
    throw asClientError(err, options.signal);
  }
  return { name, size: verified.bytes, sha256: verified.sha256, contentType, path: target };
}
