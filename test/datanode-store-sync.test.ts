// How the fragment store makes a PUT durable with few system calls: a small declared body is one
// write to a file opened O_DSYNC (durable when it returns, no fsync after it), a larger one is
// fsynced once; the fragments directory is opened once and each group of renames is one fsync of it.
import { constants, fstatSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openFragmentStore } from '../datanode/store.ts';
import { DirSyncClosedError, groupedDirSync } from '../datanode/grouped-dir-sync.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-store-sync-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const pathOf = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);
const flagsOf = async (fd: number) => parseInt(/^flags:\s+([0-7]+)/m.exec(await readFile(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);

/** Every writev and sync on a FileHandle while `work` runs: the file it went to and its open flags. */
async function fileCalls(work: () => Promise<unknown>) {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const calls: { call: 'writev' | 'sync'; path: string; flags: number }[] = [];
  for (const call of ['writev', 'sync'] as const) {
    const original = proto[call] as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, call).mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      calls.push({ call, path: pathOf(this.fd), flags: await flagsOf(this.fd) });
      return original.apply(this, args);
    } as never);
  }
  await work();
  return calls;
}

describe.runIf(process.platform === 'linux')('fragment store syncs', () => {
  it('a small declared body is one O_DSYNC write and no fsync of its file; the directory is fsynced', async () => {
    const store = await openFragmentStore(join(dir, 'dn'));
    const body = randomBytes(100_000);
    const calls = await fileCalls(() =>
      store.put('small', Readable.from([body]), { expectedSha256: sha256(body), maxBytes: 1 << 20, declaredBytes: body.length }),
    );
    const writes = calls.filter((c) => c.call === 'writev');
    expect(writes).toHaveLength(1);
    expect(writes[0].path).toContain(join('dn', 'tmp', 'small.'));
    expect(writes[0].flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
    const syncs = calls.filter((c) => c.call === 'sync').map((c) => c.path);
    expect(syncs).toEqual([join(dir, 'dn', 'fragments')]);
    expect((await readFile(join(dir, 'dn', 'fragments', 'small'))).equals(body)).toBe(true);
    await store.close();
  });

  it('a larger or undeclared body is written without O_DSYNC and fsynced once before its rename', async () => {
    const store = await openFragmentStore(join(dir, 'dn'));
    const big = randomBytes(600_000);
    const small = randomBytes(1000);
    const calls = await fileCalls(async () => {
      await store.put('big', Readable.from([big]), { expectedSha256: sha256(big), maxBytes: 1 << 20, declaredBytes: big.length });
      await store.put('chunked', Readable.from([small]), { expectedSha256: sha256(small), maxBytes: 1 << 20 });
    });
    for (const id of ['big', 'chunked']) {
      const own = calls.filter((c) => c.path.includes(join('dn', 'tmp', `${id}.`)));
      expect(own.some((c) => c.call === 'writev')).toBe(true);
      expect(own.every((c) => (c.flags & constants.O_DSYNC) === 0)).toBe(true);
      expect(own.filter((c) => c.call === 'sync')).toHaveLength(1);
    }
    await store.close();
  });

  it('keeps one handle on the fragments directory, and lets go of it on close', async () => {
    const store = await openFragmentStore(join(dir, 'dn'));
    const fragmentsDir = join(dir, 'dn', 'fragments');
    const dirHandles = async () =>
      (await readdir('/proc/self/fd')).filter((fd) => {
        try {
          return pathOf(Number(fd)) === fragmentsDir;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    for (let i = 0; i < 3; i++) {
      const body = randomBytes(1000);
      await store.put(`f${i}`, Readable.from([body]), { expectedSha256: sha256(body), maxBytes: 1 << 20, declaredBytes: body.length });
    }
    expect(await dirHandles()).toBe(1);
    await store.close();
    expect(await dirHandles()).toBe(0);
  });
});

/** How many of this process's descriptors are open on `path` (by name; an unlinked one reads '… (deleted)'). */
async function handlesOn(path: string) {
  return (await readdir('/proc/self/fd')).filter((fd) => {
    try {
      return pathOf(Number(fd)).startsWith(path);
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

/** The inode of the directory each FileHandle sync went to while `work` runs. */
async function syncedInodes(work: () => Promise<unknown>, failFirst = false) {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const inodes: number[] = [];
  const original = proto.sync;
  let fail = failFirst;
  vi.spyOn(proto, 'sync').mockImplementation(async function (this: FileHandle) {
    inodes.push(fstatSync(this.fd).ino);
    if (fail) {
      fail = false;
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    }
    return original.apply(this);
  });
  await work();
  return inodes;
}

/** A grouped sync of `dir` that counts the times it opens the directory. */
function countingDirSync() {
  const counted = { opens: 0 };
  const sync = groupedDirSync(dir, {
    openDir: (d) => {
      counted.opens += 1;
      return open(d, 'r');
    },
  });
  return Object.assign(counted, { sync });
}

describe('grouped directory sync', () => {
  it('opens the directory once for many groups and retries a failed open', async () => {
    let opens = 0;
    let failNext = true;
    const sync = groupedDirSync(dir, {
      openDir: async (d) => {
        opens += 1;
        if (failNext) {
          failNext = false;
          throw new Error('EMFILE');
        }
        return open(d, 'r');
      },
    });
    await expect(sync.sync()).rejects.toThrow('EMFILE');
    await sync.sync();
    await Promise.all([sync.sync(), sync.sync(), sync.sync()]);
    await sync.sync();
    expect(opens).toBe(2);
    await sync.close();
  });

  it.runIf(process.platform === 'linux')('fsyncs the directory now at its path after it was removed and recreated', async () => {
    const d = join(dir, 'fragments');
    await mkdir(d);
    const replaced: string[] = [];
    const sync = groupedDirSync(d, { onReplaced: (p) => replaced.push(p) });
    const inodes = await syncedInodes(async () => {
      await sync.sync();
      await rm(d, { recursive: true });
      await mkdir(d);
      await writeFile(join(d, 'f'), 'x'); // a rename's entry goes to the new directory
      await sync.sync();
      await sync.sync();
    });
    const newIno = statSync(d).ino;
    expect(inodes).toHaveLength(3);
    expect(inodes[0]).not.toBe(newIno);
    expect(inodes.slice(1)).toEqual([newIno, newIno]);
    expect(replaced).toEqual([d]); // once, not per group
    expect(await handlesOn(d)).toBe(1); // the old handle was closed
    await sync.close();
    expect(await handlesOn(d)).toBe(0);
  });

  it.runIf(process.platform === 'linux')('drops the handle after a failed fsync and reopens for the next group', async () => {
    const counted = countingDirSync();
    const { sync } = counted;
    const inodes = await syncedInodes(async () => {
      await expect(sync.sync()).rejects.toThrow('EIO');
      await sync.sync();
    }, true);
    expect(inodes).toHaveLength(2);
    expect(counted.opens).toBe(2);
    expect(await handlesOn(dir)).toBe(1);
    await sync.close();
    expect(await handlesOn(dir)).toBe(0);
  });

  it.runIf(process.platform === 'linux')('rejects a sync after close, without reopening the directory', async () => {
    const counted = countingDirSync();
    const { sync } = counted;
    await sync.sync();
    await sync.close();
    await expect(sync.sync()).rejects.toThrow(DirSyncClosedError);
    expect(counted.opens).toBe(1);
    expect(await handlesOn(dir)).toBe(0);
  });
});
