// The datanode's fragment store: one file per fragment under <dataDir>/fragments, written through
// a temp file in <dataDir>/tmp and renamed into place, so a crash never leaves a partial fragment.
// Only the datanode's user may read them: directories 0700, files 0600.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { groupedDirSync, type GroupedDirSync } from './grouped-dir-sync.ts';
import { IdLocks } from './id-locks.ts';
import { isFragmentId } from '../src/shared/datanode-api.ts';
import { randomHex } from '../src/shared/random-ids.ts';
import type { FragmentListing } from '../src/shared/datanode-api.ts';

export type PutResult =
  | { ok: true; size: number; sha256: string }
  | { ok: false; reason: 'checksum-mismatch'; size: number; sha256: string }
  | { ok: false; reason: 'too-large' };

export interface StoredFragment {
  bytes: Buffer;
  /** Hash of `bytes` as read now, not as written: a fragment rotted on disk shows its real hash. */
  sha256: string;
}

export interface PutOptions {
  expectedSha256: string;
  maxBytes: number;
  /** The body's length as declared (Content-Length), if it was. */
  declaredBytes?: number;
  /** Run once the fragment is in place, in parallel with its directory sync (a record to keep with it). */
  alongside?: () => Promise<void>;
}

export interface FragmentStore {
  readonly dataDir: string;
  put(id: string, body: Readable, options: PutOptions): Promise<PutResult>;
  get(id: string): Promise<StoredFragment | undefined>;
  delete(id: string): Promise<void>;
  list(): Promise<FragmentListing[]>;
  stats(): { fragmentCount: number; storedBytes: number };
  /** Lets go of the directory handle kept for its syncs. */
  close(): Promise<void>;
}

/** Writes are coalesced to this size: fewer thread-pool round trips than one per socket chunk. */
const WRITE_BATCH_BYTES = 256 * 1024;

/**
 * A body declared no longer than one write batch is written by a single write (writeBody) into a
 * file opened O_DSYNC: that write returns once the bytes and the size are on disk, as an
 * fdatasync after it would, so no separate sync (one thread-pool trip and system call fewer per
 * small fragment). A larger or undeclared body is written in batches and synced once at the end:
 * O_DSYNC would sync each batch. Where the platform has no O_DSYNC, every file is fsynced.
 */
const { O_WRONLY, O_CREAT, O_EXCL, O_DSYNC } = fsConstants;
const syncsOnWrite = (declaredBytes: number | undefined) =>
  // An empty body has no write to sync its file: it takes the fsync.
  O_DSYNC !== undefined && declaredBytes !== undefined && declaredBytes > 0 && declaredBytes <= WRITE_BATCH_BYTES;

/** A fragment whose file exists but cannot be read (an I/O error, something else in its place). */
export class UnreadableFragmentError extends Error {
  constructor(id: string, cause: unknown) {
    super(`fragment ${id} cannot be read: ${(cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message}`, { cause });
    this.name = 'UnreadableFragmentError';
  }
}

export class InvalidFragmentIdError extends Error {
  constructor(id: string) {
    super(`invalid fragment id ${JSON.stringify(id.slice(0, 140))}`);
    this.name = 'InvalidFragmentIdError';
  }
}

/** Opens (creating if needed) the store under `dataDir`, clears leftover temp files, counts fragments. */
export async function openFragmentStore(dataDir: string, logger?: Pick<Logger, 'warn'>): Promise<FragmentStore> {
  const fragmentsDir = join(dataDir, 'fragments');
  const tmpDir = join(dataDir, 'tmp');
  // A data dir made before permissions were tightened is tightened too: fragments are user data.
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  await mkdir(fragmentsDir, { recursive: true, mode: 0o700 });
  await chmod(fragmentsDir, 0o700);
  // Whatever is in tmp/ is a write that never reached its rename: a crash or a kill mid-PUT.
  await rm(tmpDir, { recursive: true, force: true });
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  return new DiskFragmentStore(dataDir, await scan(fragmentsDir), logger);
}

class DiskFragmentStore implements FragmentStore {
  private readonly fragmentsDir: string;
  private readonly tmpDir: string;
  private readonly quarantineDir: string;
  private fragmentCount: number;
  private storedBytes: number;
  // The commit of a PUT (stat old, rename, count) and a DELETE (stat, unlink, count) run one at a
  // time per id, so concurrent writers of one id keep the counters exact. Streaming is not locked.
  private readonly locks = new IdLocks();
  private readonly fragmentsDirSync: GroupedDirSync;

  constructor(
    readonly dataDir: string,
    initial: FragmentListing[],
    logger?: Pick<Logger, 'warn'>,
  ) {
    this.fragmentsDir = join(dataDir, 'fragments');
    this.tmpDir = join(dataDir, 'tmp');
    this.quarantineDir = join(dataDir, 'quarantine');
    this.fragmentCount = initial.length;
    this.storedBytes = initial.reduce((sum, f) => sum + f.size, 0);
    this.fragmentsDirSync = groupedDirSync(this.fragmentsDir, {
      onReplaced: (dir) =>
        logger?.warn(
          { dir },
          'fragments directory was replaced (removed and recreated, or remounted) while open: reopened it for directory fsyncs',
        ),
    });
  }

  // Defence in depth: the server validates ids too, but no string reaches a path unchecked.
  private fragmentPath(id: string): string {
    if (!isFragmentId(id)) throw new InvalidFragmentIdError(id);
    return join(this.fragmentsDir, id);
  }

  async put(id: string, body: Readable, { expectedSha256, maxBytes, declaredBytes, alongside }: PutOptions): Promise<PutResult> {
    const finalPath = this.fragmentPath(id);
    // Each PUT has its own temp file, so two PUTs of one id never write into the same file.
    const tmpPath = join(this.tmpDir, `${id}.${randomHex(8)}`);
    const synced = syncsOnWrite(declaredBytes);
    let handle: FileHandle | undefined = await open(tmpPath, synced ? O_WRONLY | O_CREAT | O_EXCL | O_DSYNC : 'wx', 0o600);
    let committed = false;
    try {
      const written = await writeBody(handle, body, maxBytes);
      if (!written) return { ok: false, reason: 'too-large' };
      const { size, sha256 } = written;
      if (sha256 !== expectedSha256) return { ok: false, reason: 'checksum-mismatch', size, sha256 };
      if (!synced) await handle.sync();
      await handle.close();
      handle = undefined;
      await this.locks.run(id, async () => {
        // One lstat per PUT tells both the size it replaces and whether a file is there at all.
        const previousSize = await this.setAsideIfNotAFile(id, finalPath);
        await rename(tmpPath, finalPath);
        committed = true;
        if (previousSize === undefined) this.fragmentCount += 1;
        this.storedBytes += size - (previousSize ?? 0);
      });
      // The rename is durable only once the directory entry is on disk.
      await Promise.all([this.fragmentsDirSync.sync(), alongside?.()]);
      return { ok: true, size, sha256 };
    } finally {
      await handle?.close().catch(() => undefined);
      if (!committed) await unlink(tmpPath).catch(() => undefined);
    }
  }

  async get(id: string): Promise<StoredFragment | undefined> {
    const path = this.fragmentPath(id);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw new UnreadableFragmentError(id, err);
    }
    // Hashed from what was read, on every read: GET /fragments answers it as X-Content-SHA256 and
    // the coordinator trusts it in place of its own hash for X-Tessera-Client-Checks downloads
    // (fragment-routes.ts). It must stay so: no cached or recorded hash here.
    return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  /**
   * A rewrite of an unreadable replica may find something other than a file in its place (a
   * directory, a device): it is moved to quarantine/ for the operator, never deleted, so the
   * good copy can take its name. Answers the size of the file it replaces (undefined: none).
   */
  private async setAsideIfNotAFile(id: string, finalPath: string): Promise<number | undefined> {
    let entry;
    try {
      entry = await lstat(finalPath);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (entry.isFile()) return entry.size;
    await mkdir(this.quarantineDir, { recursive: true, mode: 0o700 });
    await rename(finalPath, join(this.quarantineDir, `${id}.${Date.now()}.${randomBytes(4).toString('hex')}`));
    return undefined;
  }

  async delete(id: string): Promise<void> {
    const path = this.fragmentPath(id);
    await this.locks.run(id, async () => {
      const size = await sizeOf(path);
      if (size === undefined) return;
      try {
        await unlink(path);
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      this.fragmentCount -= 1;
      this.storedBytes -= size;
    });
  }

  list(): Promise<FragmentListing[]> {
    return scan(this.fragmentsDir);
  }

  stats(): { fragmentCount: number; storedBytes: number } {
    return { fragmentCount: this.fragmentCount, storedBytes: this.storedBytes };
  }

  close(): Promise<void> {
    return this.fragmentsDirSync.close();
  }
}

/**
 * Streams `body` into `handle`, hashing it on the way; undefined once it passes `maxBytes`
 * (the rest is left unread).
 */
async function writeBody(handle: FileHandle, body: Readable, maxBytes: number): Promise<{ size: number; sha256: string } | undefined> {
  const hash = createHash('sha256');
  let size = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  // destroyOnReturn: false leaves the request (and its socket) alive when we stop reading
  // early, so the server can still answer 413.
  for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) return undefined;
    hash.update(chunk);
    batch.push(chunk);
    batchBytes += chunk.length;
    if (batchBytes >= WRITE_BATCH_BYTES) {
      await writeAll(handle, batch);
      batch = [];
      batchBytes = 0;
    }
  }
  await writeAll(handle, batch);
  return { size, sha256: hash.digest('hex') };
}

/** The fragments on disk (the truth an operator sees), skipping anything that is not one. */
async function scan(fragmentsDir: string): Promise<FragmentListing[]> {
  const entries = await readdir(fragmentsDir, { withFileTypes: true });
  const ids = entries.filter((e) => e.isFile() && isFragmentId(e.name)).map((e) => e.name);
  const listing: FragmentListing[] = [];
  // Bounded parallelism: a node may hold many thousands of fragments.
  for (let i = 0; i < ids.length; i += 64) {
    const sizes = await Promise.all(ids.slice(i, i + 64).map((id) => sizeOf(join(fragmentsDir, id))));
    sizes.forEach((size, j) => {
      if (size !== undefined) listing.push({ id: ids[i + j], size }); // undefined: deleted meanwhile
    });
  }
  return listing;
}

async function writeAll(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending);
    pending = dropBytes(pending, bytesWritten);
  }
}

/** What is left of `buffers` after a (possibly partial) write of `count` bytes. */
function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  let left = count;
  let i = 0;
  while (i < buffers.length && left >= buffers[i].length) left -= buffers[i++].length;
  if (i === buffers.length) return [];
  return [buffers[i].subarray(left), ...buffers.slice(i + 1)];
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
