// The metadata seam (src/metadata/store.ts) on its SQLite engine, from a real index file: every
// method answers a promise, errors become rejections, the changes that must be one transaction
// are one method, and a PostgreSQL URL without a PostgreSQL engine is a clear error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openMetadata, openSqliteMetadata, MetadataConfigError, type SqliteMetadataStore } from '../src/metadata/store.ts';

const T = 1_700_000_000_000;
let dir: string;
let store: SqliteMetadataStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  store = openSqliteMetadata(path.join(dir, 'index.sqlite'));
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const upload = (name: string, size = 10, expiresAt = T + 1000) => ({
  name,
  uploadId: `u-${name}`,
  size,
  contentType: 'image/png',
  sha256: null,
  fragmentSize: size,
  fragmentCount: 1,
  createdAt: T,
  expiresAt,
});

describe('the SQLite metadata store', () => {
  it('answers promises, and a constraint error is a rejection with its code', async () => {
    expect(store.engine).toBe('sqlite');
    const row = await store.catalog.insertUpload(upload('a'));
    expect(await store.catalog.uploadById('u-a')).toEqual(row);
    await expect(store.catalog.insertUpload(upload('a'))).rejects.toMatchObject({ code: 'IMAGE_ALREADY_EXISTS' });
    expect(await store.catalog.imageCount()).toBe(1);
  });

  it('inserts a rebuild batch in one transaction, refusing only the images whose name is taken', async () => {
    const image = (name: string, key: string) => ({
      imageKey: key,
      name,
      size: 3,
      contentType: 'image/png',
      sha256: 'a'.repeat(64),
      fragmentSize: 3,
      createdAt: T,
    });
    const fragment = (id: string) => [{ id, idx: 0, size: 3, sha256: 'b'.repeat(64), replicas: [] }];
    const added = await store.catalog.insertRebuiltImages([
      { image: image('x', 'k1'), fragments: fragment('f1') },
      { image: image('x', 'k2'), fragments: fragment('f2') },
      { image: image('y', 'k3'), fragments: fragment('f3') },
    ]);
    expect(added).toEqual([true, false, true]);
    expect((await store.catalog.storedImages()).map((i) => i.name).sort()).toEqual(['x', 'y']);
    expect(await store.catalog.fragmentById('f2')).toBeUndefined();
    expect(await store.catalog.releaseWriteIntentsOf(['another-coordinator'], T)).toBe(0);
  });

  it('checks a token quota and inserts its upload in one transaction', async () => {
    const limits = { maxOpenUploads: 2, maxReservedBytes: 100 };
    const first = await store.uploadOwners.insertOwnedUpload(upload('q1', 60), 'tok', limits, T);
    expect(first.row?.name).toBe('q1');
    const refused = await store.uploadOwners.insertOwnedUpload(upload('q2', 41), 'tok', limits, T);
    expect(refused).toEqual({ refused: { count: 1, bytes: 60 } });
    expect(await store.catalog.imageHoldingName('q2')).toBeUndefined();
    expect((await store.uploadOwners.insertOwnedUpload(upload('q2', 40), 'tok', limits, T)).row?.name).toBe('q2');
    expect((await store.uploadOwners.insertOwnedUpload(upload('q3', 1), 'tok', limits, T)).refused?.count).toBe(2);
    expect((await store.uploadOwners.insertOwnedUpload(upload('q3', 1), 'other', limits, T)).row?.name).toBe('q3');
  });

  it('keeps tokens and the first auth key written', async () => {
    await store.tokens.insert({ id: 't1', name: 'admin', role: 'admin', createdAt: T, expiresAt: null }, 'h'.repeat(64));
    expect((await store.tokens.byHash('h'.repeat(64)))?.id).toBe('t1');
    expect(await store.tokens.activeAdminCount(T)).toBe(1);
    expect(await store.tokens.revoke('t1', T + 1)).toBe(true);
    expect(await store.tokens.revoke('t1', T + 2)).toBe(false);
    expect(await store.tokens.activeAdminCount(T + 3)).toBe(0);
    const key = await store.authKeys.ensure('k', Buffer.from('first'));
    expect((await store.authKeys.ensure('k', Buffer.from('second'))).equals(key)).toBe(true);
    expect(key.toString()).toBe('first');
  });

  it('records a rendition with its upload, or nothing of it when the source image is gone', async () => {
    const source = await store.catalog.insertUpload(upload('src'));
    const rendition = await store.catalog.insertUpload(upload('\u0001rendition'));
    const row = { renditionImageId: rendition.id, sourceImageId: source.id, variant: 'v', size: 10, width: 1, height: 1, lastUsedAt: T };
    const fragment = { id: 'rf', imageId: rendition.id, imageKey: rendition.imageKey, idx: 0, size: 10, sha256: 'c'.repeat(64) };
    // The source is still an open upload, not a stored image: no renditions row.
    expect(await store.renditions.completeRendition(fragment, [], 'c'.repeat(64), T, row)).toBe(false);
    expect(await store.renditions.find(source.id, 'v')).toBeUndefined();
  });
});

const engineBuiltIn = fs.existsSync(new URL('../src/metadata/postgres/index.ts', import.meta.url));

describe('openMetadata', () => {
  it('opens a SQLite file for a path', async () => {
    const other = await openMetadata(path.join(dir, 'other.sqlite'), pino({ level: 'silent' }));
    expect(other.engine).toBe('sqlite');
    await other.close();
  });

  it.skipIf(engineBuiltIn)(
    'refuses a PostgreSQL URL with a clear error while no PostgreSQL engine is built in (skipped: it is)',
    async () => {
      await expect(openMetadata('postgres://127.0.0.1:1/none', pino({ level: 'silent' }))).rejects.toBeInstanceOf(MetadataConfigError);
    },
  );
});
