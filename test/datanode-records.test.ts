// The datanode's record journal (datanode/records.ts): records survive a restart, a torn last
// line (a crash mid-append) is cut off without losing the records before it, and concurrent
// writers share syncs yet each resolves only once its record is on disk.
import { constants, readlinkSync } from 'node:fs';
import { mkdtemp, rm, appendFile, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openRecordStore, type JournalHandle } from '../datanode/records.ts';
import type { ImageManifest } from '../src/shared/datanode-api.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-records-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const manifest = (image: string, fragmentIds: string[]): ImageManifest => ({
  kind: 'manifest',
  image,
  name: `n/${image}`,
  size: fragmentIds.length * 10,
  contentType: 'image/png',
  sha256: 'a'.repeat(64),
  createdAt: 1000,
  fragmentSize: 10,
  fragments: fragmentIds.map((id, index) => ({ index, size: 10, sha256: 'b'.repeat(64), id })),
});

it('keeps manifests and tombstones across a reopen and knows which fragments live images hold', async () => {
  const store = await openRecordStore(dir);
  await Promise.all([store.add(manifest('img1', ['f1', 'f2'])), store.add(manifest('img2', ['f3']))]);
  await store.add({ kind: 'tombstone', image: 'img2', deletedAt: 2000 });
  expect(store.liveOwnerOf('f1')).toBe('img1');
  expect(store.liveOwnerOf('f3')).toBeUndefined();
  await store.close();

  const again = await openRecordStore(dir);
  expect(
    again
      .list()
      .manifests.map((m) => m.image)
      .sort(),
  ).toEqual(['img1', 'img2']);
  expect(again.list().tombstones).toEqual([{ kind: 'tombstone', image: 'img2', deletedAt: 2000 }]);
  expect(again.liveOwnerOf('f2')).toBe('img1');
  expect(again.liveOwnerOf('f3')).toBeUndefined();
  expect(again.isTombstoned('img2')).toBe(true);
  await again.close();
});

it('cuts a torn last line and appends cleanly after it', async () => {
  const store = await openRecordStore(dir);
  await store.add(manifest('img1', ['f1']));
  await store.close();
  const file = join(dir, 'records', 'journal.jsonl');
  await appendFile(file, '{"kind":"manifest","image":"torn"');

  const reopened = await openRecordStore(dir);
  await reopened.add(manifest('img3', ['f9']));
  await reopened.close();
  expect(
    (await readFile(file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .every((line) => JSON.parse(line)),
  ).toBe(true);

  const last = await openRecordStore(dir);
  expect(
    last
      .list()
      .manifests.map((m) => m.image)
      .sort(),
  ).toEqual(['img1', 'img3']);
  await last.close();
});

it('writes each of many concurrent records once and resolves every writer', async () => {
  const store = await openRecordStore(dir);
  const ids = Array.from({ length: 200 }, (_, i) => `img${i}`);
  await Promise.all(ids.map((id) => store.add(manifest(id, [`f-${id}`]))));
  await store.add(manifest('img0', ['f-img0'])); // already held: not written again
  await store.close();
  const lines = (await readFile(join(dir, 'records', 'journal.jsonl'), 'utf8')).split('\n').filter(Boolean);
  expect(lines).toHaveLength(200);
});

// Linux shows an open file's flags in /proc/self/fdinfo: the journal's appends are synced writes
// (O_DSYNC), so a record is on disk when its write returns, with no fdatasync call after it.
it.runIf(process.platform === 'linux')('opens the journal for synced appends (O_DSYNC)', async () => {
  const store = await openRecordStore(dir);
  const journal = join(dir, 'records', 'journal.jsonl');
  const fds = (await readdir('/proc/self/fd')).filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === journal;
    } catch {
      return false; // closed meanwhile
    }
  });
  expect(fds).toHaveLength(1);
  const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(await readFile(`/proc/self/fdinfo/${fds[0]}`, 'utf8'))![1], 8);
  expect(flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
  expect(flags & constants.O_APPEND).toBe(constants.O_APPEND);
  await store.add(manifest('img1', ['f1']));
  await store.close();
  expect(await readFile(journal, 'utf8')).toContain('"img1"');
});

// A journal write may write fewer bytes than asked, or fail part way: the group commit must not
// acknowledge a record that is not whole on disk, and a torn line must never swallow the next
// batch's records (loadJournal skips an unparsable line). A wrapped file handle shortens or
// fails the writes; the journal itself is a real file, read back by a reopen.
function flakyJournal(plan: ('short' | 'short-then-fail' | 'ok')[]) {
  return (handle: JournalHandle): JournalHandle => {
    let failNext = false;
    const write = async (data: string | Buffer, offset = 0, length?: number) => {
      const buf = typeof data === 'string' ? Buffer.from(data) : data.subarray(offset, offset + (length ?? data.length - offset));
      if (failNext) {
        failNext = false;
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
      const step = plan.shift() ?? 'ok';
      if (step === 'ok') return handle.write(buf, 0, buf.length);
      failNext = step === 'short-then-fail';
      const half = buf.subarray(0, Math.ceil(buf.length / 2));
      await handle.write(half, 0, half.length);
      return { bytesWritten: half.length, buffer: buf };
    };
    return {
      write: write as JournalHandle['write'],
      datasync: () => handle.datasync(),
      truncate: (len) => handle.truncate(len),
      close: () => handle.close(),
    };
  };
}

/** The images whose manifests a store freshly opened on `dir` holds, sorted (what survived a restart). */
async function imagesAfterReopen(): Promise<string[]> {
  const again = await openRecordStore(dir);
  try {
    return again
      .list()
      .manifests.map((m) => m.image)
      .sort();
  } finally {
    await again.close();
  }
}

it('writes the rest of a record after a short write, and acknowledges it only once whole', async () => {
  const store = await openRecordStore(dir, { wrapJournal: flakyJournal(['short']) });
  await store.add(manifest('img1', ['f1']));
  await store.add(manifest('img2', ['f2']));
  await store.close();
  expect(await imagesAfterReopen()).toEqual(['img1', 'img2']);
});

it('fails the writers of a torn write, and the next record is not lost behind the torn line', async () => {
  const store = await openRecordStore(dir, { wrapJournal: flakyJournal(['ok', 'short-then-fail']) });
  await store.add(manifest('img0', ['f0']));
  await expect(store.add(manifest('torn', ['f1']))).rejects.toThrow(/EIO/);
  expect(store.list().manifests.map((m) => m.image)).toEqual(['img0']);
  await store.add(manifest('img2', ['f2']));
  await store.close();
  expect(await imagesAfterReopen()).toEqual(['img0', 'img2']);
});

it('starts the next batch on a line of its own when the torn tail cannot be cut off', async () => {
  const wrap = flakyJournal(['short-then-fail']);
  const store = await openRecordStore(dir, {
    wrapJournal: (handle) => ({ ...wrap(handle), truncate: () => Promise.reject(new Error('EIO: truncate')) }),
  });
  await expect(store.add(manifest('torn', ['f1']))).rejects.toThrow(/EIO/);
  await store.add(manifest('img2', ['f2']));
  await store.close();
  expect(await imagesAfterReopen()).toEqual(['img2']);
});
