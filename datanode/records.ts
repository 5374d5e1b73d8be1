// The datanode's image records (manifests and tombstones, src/shared/datanode-api.ts): one append-only journal,
// <dataDir>/records/journal.jsonl, held in memory. Appends are group-committed: writers arriving
// while an fdatasync runs share the next one, so many concurrent uploads cost few syncs.
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, truncate } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRecord } from '../src/shared/datanode-api.ts';
import type { ImageManifest, ImageRecord, ImageTombstone, RecordListing } from '../src/shared/datanode-api.ts';

export interface RecordStore {
  /** Resolves once the record is on disk (fdatasync'ed). A record already held is not written again. */
  add(record: ImageRecord): Promise<void>;
  list(): RecordListing;
  /** The image of the live (not tombstoned) manifest here that references this fragment, if any. */
  liveOwnerOf(fragmentId: string): string | undefined;
  isTombstoned(image: string): boolean;
  close(): Promise<void>;
}

export const RECORDS_DIR = 'records';
const JOURNAL = 'journal.jsonl';

/** The records held, by image, and which live image each fragment belongs to. */
function createRecordIndex() {
  const manifests = new Map<string, ImageManifest>();
  const tombstones = new Map<string, ImageTombstone>();
  /** fragment id -> image, for live manifests only. */
  const owners = new Map<string, string>();

  const disown = (image: string) => {
    for (const f of manifests.get(image)?.fragments ?? []) if (owners.get(f.id) === image) owners.delete(f.id);
  };

  return {
    apply(record: ImageRecord): void {
      if (record.kind === 'tombstone') {
        if (tombstones.has(record.image)) return;
        tombstones.set(record.image, record);
        disown(record.image);
        return;
      }
      // Rewritten (a fragment was replaced while completeUpload hashed): the older fragments are not its own any more.
      disown(record.image);
      manifests.set(record.image, record);
      if (!tombstones.has(record.image)) for (const f of record.fragments) owners.set(f.id, record.image);
    },
    /** The same record is held already (a repeated write is not written again). */
    held(record: ImageRecord): boolean {
      if (record.kind === 'tombstone') return tombstones.has(record.image);
      const have = manifests.get(record.image);
      return have !== undefined && JSON.stringify(have) === JSON.stringify(record);
    },
    list: (): RecordListing => ({ manifests: [...manifests.values()], tombstones: [...tombstones.values()] }),
    liveOwnerOf: (fragmentId: string) => owners.get(fragmentId),
    isTombstoned: (image: string) => tombstones.has(image),
  };
}

/** The journal's records. A crash mid-append can leave a torn last line: it is cut off, so the next append starts clean. */
async function loadJournal(file: string): Promise<ImageRecord[]> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) await truncate(file, Buffer.byteLength(text.slice(0, end)));
  const records: ImageRecord[] = [];
  for (const line of text.slice(0, end).split('\n')) {
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const record = parseRecord(parsed);
    if (record) records.push(record);
  }
  return records;
}

/**
 * Appends with group commit: lines queued while a write and fdatasync run go out together in
 * the next one. `written` sees each record once it is durable, before its writer is answered.
 * `syncedWrites`: the journal was opened O_DSYNC, so a write is durable once it returns (its
 * fdatasync done in the same call): one system call and one thread-pool trip per group, not two.
 */
function groupCommitter(handle: FileHandle, written: (record: ImageRecord) => void, syncedWrites: boolean) {
  let queue: { line: string; record: ImageRecord; done: (err?: unknown) => void }[] = [];
  let flushing: Promise<void> | undefined;

  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await handle.write(batch.map((b) => b.line).join(''));
        if (!syncedWrites) await handle.datasync();
        for (const b of batch) written(b.record);
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
  }

  function kick(): void {
    if (flushing) return;
    flushing = flush().finally(() => {
      flushing = undefined;
      if (queue.length > 0) kick(); // queued between the loop's last check and here
    });
  }

  return {
    append(record: ImageRecord): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        queue.push({ line: `${JSON.stringify(record)}\n`, record, done: (err) => (err ? reject(err) : resolve()) });
        kick();
      });
    },
    /** Resolves once no write is under way. */
    settled: () => flushing,
  };
}

export async function openRecordStore(dataDir: string): Promise<RecordStore> {
  const dir = join(dataDir, RECORDS_DIR);
  const file = join(dir, JOURNAL);
  await mkdir(dir, { recursive: true });
  const index = createRecordIndex();
  for (const record of await loadJournal(file)) index.apply(record);

  // O_DSYNC where the platform has it (Linux, macOS): each append is durable when its write returns.
  const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fsConstants;
  const syncedWrites = O_DSYNC !== undefined;
  const handle: FileHandle = await open(file, syncedWrites ? O_WRONLY | O_APPEND | O_CREAT | O_DSYNC : 'a', 0o644);
  // The journal's own directory entry must be durable once, after its creation.
  const dirHandle = await open(dir, 'r');
  await dirHandle.sync().finally(() => dirHandle.close());
  const journal = groupCommitter(handle, index.apply, syncedWrites);

  return {
    add: (record) => (index.held(record) ? Promise.resolve() : journal.append(record)),
    list: index.list,
    liveOwnerOf: index.liveOwnerOf,
    isTombstoned: index.isTombstoned,
    async close() {
      await journal.settled();
      await handle.close();
    },
  };
}
