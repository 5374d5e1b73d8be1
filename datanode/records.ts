// The datanode's image records (manifests and tombstones, src/shared/datanode-api.ts): one append-only journal,
// <dataDir>/records/journal.jsonl, held in memory. Appends are group-committed: writers arriving
// while an fdatasync runs share the next one, so many concurrent uploads cost few syncs.
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

export async function openRecordStore(dataDir: string): Promise<RecordStore> {
  const dir = join(dataDir, RECORDS_DIR);
  const file = join(dir, JOURNAL);
  await mkdir(dir, { recursive: true });

  const manifests = new Map<string, ImageManifest>();
  const tombstones = new Map<string, ImageTombstone>();
  /** fragment id -> image, for live manifests only. */
  const owners = new Map<string, string>();

  function apply(record: ImageRecord): void {
    if (record.kind === 'tombstone') {
      if (tombstones.has(record.image)) return;
      tombstones.set(record.image, record);
      for (const f of manifests.get(record.image)?.fragments ?? []) if (owners.get(f.id) === record.image) owners.delete(f.id);
      return;
    }
    // Rewritten (a fragment was replaced while completeUpload hashed): the older fragments are not its own any more.
    for (const f of manifests.get(record.image)?.fragments ?? []) if (owners.get(f.id) === record.image) owners.delete(f.id);
    manifests.set(record.image, record);
    if (!tombstones.has(record.image)) for (const f of record.fragments) owners.set(f.id, record.image);
  }

  // Load. A crash mid-append can leave a torn last line: it is cut off, so the next append starts clean.
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) await truncate(file, Buffer.byteLength(text.slice(0, end)));
  for (const line of text.slice(0, end).split('\n')) {
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const record = parseRecord(parsed);
    if (record) apply(record);
  }

  const handle: FileHandle = await open(file, 'a', 0o644);
  // The journal's own directory entry must be durable once, after its creation.
  const dirHandle = await open(dir, 'r');
  await dirHandle.sync().finally(() => dirHandle.close());

  let queue: { line: string; record: ImageRecord; done: (err?: unknown) => void }[] = [];
  let flushing: Promise<void> | undefined;

  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await handle.write(batch.map((b) => b.line).join(''));
        await handle.datasync();
        for (const b of batch) apply(b.record);
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

  function held(record: ImageRecord): boolean {
    if (record.kind === 'tombstone') return tombstones.has(record.image);
    const have = manifests.get(record.image);
    return have !== undefined && JSON.stringify(have) === JSON.stringify(record);
  }

  return {
    add(record) {
      if (held(record)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        queue.push({ line: `${JSON.stringify(record)}\n`, record, done: (err) => (err ? reject(err) : resolve()) });
        kick();
      });
    },
    list: () => ({ manifests: [...manifests.values()], tombstones: [...tombstones.values()] }),
    liveOwnerOf: (fragmentId) => owners.get(fragmentId),
    isTombstoned: (image) => tombstones.has(image),
    async close() {
      await flushing;
      await handle.close();
    },
  };
}
