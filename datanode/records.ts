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

/**
 * The records held, by image, and which live image each fragment belongs to. A manifest is held
 * as its journal line's JSON (`text`, JSON.stringify of the record): one flat string per image
 * rather than a tree of a dozen objects, so a datanode holding many images uses less memory and
 * gives the garbage collector less to trace; it is parsed again only when listed or replaced.
 */
function createRecordIndex() {
  const manifests = new Map<string, string>();
  const tombstones = new Map<string, ImageTombstone>();
  /** fragment id -> image, for live manifests only. */
  const owners = new Map<string, string>();

  const disown = (image: string) => {
    const text = manifests.get(image);
    if (text === undefined) return;
    for (const f of (JSON.parse(text) as ImageManifest).fragments) if (owners.get(f.id) === image) owners.delete(f.id);
  };

  return {
    apply(record: ImageRecord, text: string): void {
      if (record.kind === 'tombstone') {
        if (tombstones.has(record.image)) return;
        tombstones.set(record.image, record);
        disown(record.image);
        return;
      }
      // Rewritten (a fragment was replaced while completeUpload hashed): the older fragments are not its own any more.
      disown(record.image);
      manifests.set(record.image, text);
      if (!tombstones.has(record.image)) for (const f of record.fragments) owners.set(f.id, record.image);
    },
    /** The same record is held already (a repeated write is not written again). */
    held(record: ImageRecord, text: string): boolean {
      if (record.kind === 'tombstone') return tombstones.has(record.image);
      return manifests.get(record.image) === text;
    },
    list: (): RecordListing => ({
      manifests: [...manifests.values()].map((text) => JSON.parse(text) as ImageManifest),
      tombstones: [...tombstones.values()],
    }),
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

/** What the group commit uses of the journal's file handle (tests wrap it to fail or shorten writes). */
export type JournalHandle = Pick<FileHandle, 'write' | 'datasync' | 'truncate' | 'close'>;

/**
 * Appends with group commit: lines queued while a write and fdatasync run go out together in
 * the next one. `written` sees each record once it is durable, before its writer is answered.
 * `syncedWrites`: the journal was opened O_DSYNC, so a write is durable once it returns (its
 * fdatasync done in the same call): one system call and one thread-pool trip per group, not two.
 * `size`: the journal's length, all of it whole lines.
 */
function groupCommitter(handle: JournalHandle, written: (record: ImageRecord, text: string) => void, syncedWrites: boolean, size: number) {
  let queue: { text: string; record: ImageRecord; done: (err?: unknown) => void }[] = [];
  let flushing: Promise<void> | undefined;
  /** Where the last whole line ends; undefined when a failed write left a torn tail that could not be cut off. */
  let good: number | undefined = size;

  /** Every byte, however many writes it takes (a write may write fewer bytes than asked). */
  async function writeAll(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length;) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset);
      if (bytesWritten <= 0) throw new Error('the record journal took no bytes');
      offset += bytesWritten;
    }
  }

  /**
   * After a failed or short write, part of the batch may be in the file: a torn line. The next
   * batch appended right after it would join it into one unparsable line that loadJournal skips,
   * losing an acknowledged record. So the tail is cut back to the last whole line, or, should
   * that fail too, the next batch starts with a newline of its own (an empty line is skipped).
   */
  async function cutTornTail(): Promise<void> {
    try {
      if (good === undefined) return;
      await handle.truncate(good);
      await handle.datasync();
    } catch {
      good = undefined;
    }
  }

  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      const data = Buffer.from((good === undefined ? '\n' : '') + batch.map((b) => `${b.text}\n`).join(''));
      try {
        await writeAll(data);
        if (!syncedWrites) await handle.datasync();
      } catch (err) {
        await cutTornTail();
        for (const b of batch) b.done(err);
        continue;
      }
      if (good !== undefined) good += data.length;
      for (const b of batch) written(b.record, b.text);
      for (const b of batch) b.done();
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
    /** `text`: the record's JSON (its line, without the newline). */
    append(record: ImageRecord, text: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        queue.push({ text, record, done: (err) => (err ? reject(err) : resolve()) });
        kick();
      });
    },
    /** Resolves once no write is under way. */
    settled: () => flushing,
  };
}

export async function openRecordStore(
  dataDir: string,
  { wrapJournal = (h) => h }: { wrapJournal?: (handle: JournalHandle) => JournalHandle } = {},
): Promise<RecordStore> {
  const dir = join(dataDir, RECORDS_DIR);
  const file = join(dir, JOURNAL);
  await mkdir(dir, { recursive: true });
  const index = createRecordIndex();
  for (const record of await loadJournal(file)) index.apply(record, JSON.stringify(record));

  // O_DSYNC where the platform has it (Linux, macOS): each append is durable when its write returns.
  const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fsConstants;
  const syncedWrites = O_DSYNC !== undefined;
  const handle: FileHandle = await open(file, syncedWrites ? O_WRONLY | O_APPEND | O_CREAT | O_DSYNC : 'a', 0o644);
  // The journal's own directory entry must be durable once, after its creation.
  const dirHandle = await open(dir, 'r');
  await dirHandle.sync().finally(() => dirHandle.close());
  const { size } = await handle.stat();
  const journal = groupCommitter(wrapJournal(handle), index.apply, syncedWrites, size);

  return {
    add(record) {
      const text = JSON.stringify(record);
      return index.held(record, text) ? Promise.resolve() : journal.append(record, text);
    },
    list: index.list,
    liveOwnerOf: index.liveOwnerOf,
    isTombstoned: index.isTombstoned,
    async close() {
      await journal.settled();
      await handle.close();
    },
  };
}
