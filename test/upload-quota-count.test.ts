// The per-token open-upload quota counts, from a real SQLite index, only that token's uploads
// that are still open and unexpired, also when the token has completed many uploads before
// (the count starts from the open uploads, not from the token's owner rows).
import { beforeEach, expect, it } from 'vitest';
import { sqliteMetadataOn, type SqliteMetadataStore } from '../src/metadata/store.ts';
import { openDatabase } from '../src/metadata/database.ts';
import type { InsertUpload } from '../src/uploads/begin-upload.ts';
import { createQuotas } from '../src/auth/quotas.ts';
import type { Principal } from '../src/auth/rules.ts';
import type { TesseraError } from '../src/errors.ts';

const T = 1_700_000_000_000;
let store: SqliteMetadataStore;
let seq = 0;
const limits = {
  rateLimitPerSec: 0,
  maxOpenUploadsPerToken: 3,
  maxReservedBytesPerToken: 1000,
  maxWsConnectionsPerToken: 4,
  maxSubscriptionsPerToken: 4,
};
const token = (id: string): Principal => ({ kind: 'token', id, name: id, role: 'write' });

beforeEach(() => {
  store = sqliteMetadataOn(openDatabase(':memory:'));
});

const begin =
  (size: number, expiresAt = T + 1000) =>
  (insert: InsertUpload) => {
    seq += 1;
    return insert({
      name: `img-${seq}`,
      uploadId: `u${seq}`,
      size,
      contentType: 'image/png',
      sha256: null,
      fragmentSize: size,
      fragmentCount: 1,
      createdAt: T,
      expiresAt,
    });
  };
const code = async (fn: () => Promise<unknown>) => {
  try {
    await fn();
  } catch (err) {
    return (err as TesseraError).code;
  }
  return undefined;
};

it('counts open unexpired uploads of the token only, not completed ones nor other tokens', async () => {
  const quotas = createQuotas(store.uploadOwners, limits, () => T);
  const a = token('a');
  // Many completed uploads of the same token: they no longer count.
  for (let i = 0; i < 50; i++) {
    const row = await quotas.reserveUpload(a, 10, begin(10));
    expect(await store.catalog.completeUpload(row.id, [], 'ff'.repeat(32), T)).toBe('done');
  }
  await quotas.reserveUpload(a, 10, begin(10, T - 1)); // already expired: not counted
  await quotas.reserveUpload(token('b'), 10, begin(10));
  await quotas.reserveUpload(token('b'), 10, begin(10));
  await quotas.reserveUpload(a, 10, begin(10));
  await quotas.reserveUpload(a, 10, begin(10));
  await quotas.reserveUpload(a, 10, begin(10));
  expect(await code(() => quotas.reserveUpload(a, 10, begin(10)))).toBe('QUOTA_EXCEEDED');
  expect(await code(() => quotas.reserveUpload(token('b'), 10, begin(10)))).toBeUndefined();
});

it('counts the bytes the open uploads reserve', async () => {
  const quotas = createQuotas(store.uploadOwners, limits, () => T);
  const a = token('a');
  await quotas.reserveUpload(a, 600, begin(600));
  expect(await code(() => quotas.reserveUpload(a, 401, begin(401)))).toBe('QUOTA_EXCEEDED');
  expect(await code(() => quotas.reserveUpload(a, 400, begin(400)))).toBeUndefined();
});
